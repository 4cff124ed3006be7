"""Qwen2-VL: every vision block attends within each image (no windows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import vision_utils

from vlparity.adapters.base import FamilyAdapter
from vlparity.export.vision_graph import VisionGraph, segment_layout


class Qwen2_VLAdapter(FamilyAdapter):
    model_type = "qwen2_vl"

    @property
    def model_class(self) -> type[nn.Module]:
        from transformers import Qwen2VLForConditionalGeneration

        return Qwen2VLForConditionalGeneration

    @property
    def vision_class(self) -> type[nn.Module]:
        from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

        return Qwen2VisionTransformerPretrainedModel

    def grid_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, torch.Tensor]:
        return {
            "position_ids": vision_utils.get_vision_position_ids(grid_thw, vision_config.spatial_merge_size),
            "cu_seqlens": vision_utils.get_vision_cu_seqlens(grid_thw),
        }

    def export_graph(self, vision: nn.Module, attention: str = "segments") -> nn.Module:
        from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision

        return VisionGraph(
            vision, apply_rotary_pos_emb_vision, full_blocks=set(range(len(vision.blocks))), windowed=False
        )

    def export_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, np.ndarray]:
        return full_attention_inputs(self.grid_inputs(grid_thw.cpu(), vision_config))


def full_attention_inputs(grid: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The graph inputs of a tower whose every block attends within each image: rotary positions and the segment
    layout of ``cu_seqlens`` (``VisionGraph``'s ``full_*``)."""
    full = segment_layout(grid["cu_seqlens"])
    return {
        "position_ids": grid["position_ids"].numpy().astype(np.int64),
        "full_gather": full.gather,
        "full_valid": full.valid,
        "full_scatter": full.scatter,
    }
