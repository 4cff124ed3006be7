"""Qwen2.5-VL: windowed vision attention (64-token windows) with full attention in ``fullatt_block_indexes``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import vision_utils

from vlparity.adapters.base import FamilyAdapter
from vlparity.errors import UnsupportedModelError
from vlparity.export.vision_graph import VisionGraph, segment_layout


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

    def check_vision_config(self, vision_config: dict[str, Any], source: str) -> None:
        """A window narrower than one merged token holds none: transformers' window index divides by zero."""
        super().check_vision_config(vision_config, source)
        window, merged = vision_config["window_size"], vision_config["patch_size"] * vision_config["spatial_merge_size"]
        if window < merged:
            raise UnsupportedModelError(
                f"{source}: vision_config.window_size {window} is narrower than one merged token (patch_size × "
                f"spatial_merge_size = {merged} px), so no attention window can hold one (transformers' own forward "
                f"divides by zero). Set window_size to a multiple of {merged} in config.json (the published models use "
                "112)."
            )

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

    def export_graph(self, vision: nn.Module, attention: str = "segments") -> nn.Module:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

        full_blocks = set(vision.config.fullatt_block_indexes)
        return VisionGraph(vision, apply_rotary_pos_emb_vision, full_blocks, windowed=True, attention=attention)

    def export_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, np.ndarray]:
        grid = self.grid_inputs(grid_thw.cpu(), vision_config)
        full, window = segment_layout(grid["cu_seqlens"]), segment_layout(grid["cu_window_seqlens"])
        window_index = grid["window_index"].numpy().astype(np.int64)
        return {
            "position_ids": grid["position_ids"].numpy().astype(np.int64),
            "full_gather": full.gather,
            "full_valid": full.valid,
            "full_scatter": full.scatter,
            "window_gather": window.gather,
            "window_valid": window.valid,
            "window_scatter": window.scatter,
            "window_index": window_index,
            "reverse_index": np.argsort(window_index, kind="stable").astype(np.int64),
        }
