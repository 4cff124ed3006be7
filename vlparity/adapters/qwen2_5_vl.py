"""Qwen2.5-VL: windowed vision attention (64-token windows) with full attention in ``fullatt_block_indexes``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import vision_utils

from vlparity.adapters.base import FamilyAdapter


class Qwen2_5_VLAdapter(FamilyAdapter):
    model_type = "qwen2_5_vl"

    @property
    def model_class(self) -> type[nn.Module]:
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration

    @property
    def vision_class(self) -> type[nn.Module]:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

        return Qwen2_5_VisionTransformerPretrainedModel

    def grid_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, torch.Tensor]:
        window_index, cu_window_seqlens = vision_utils.get_vision_window_index(
            grid_thw,
            spatial_merge_size=vision_config.spatial_merge_size,
            window_size=vision_config.window_size,
            patch_size=vision_config.patch_size,
        )
        return {
            "position_ids": vision_utils.get_vision_position_ids(grid_thw, vision_config.spatial_merge_size),
            "cu_seqlens": vision_utils.get_vision_cu_seqlens(grid_thw),
            "window_index": window_index.to(grid_thw.device),
            "cu_window_seqlens": cu_window_seqlens,
        }
