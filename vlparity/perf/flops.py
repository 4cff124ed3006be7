"""Analytical FLOP counts of a vision tower for one grid: linear layers and attention apart.

Counted from the module's own layer shapes (not hard-coded per family), so a figure of GFLOP/s means the same thing for
torch eager, every ONNX precision and both families. Multiply-add = 2 FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vlparity.adapters.base import FamilyAdapter


@dataclass(frozen=True)
class VisionFlops:
    linear: float  # patch embedding, every block linear, the merger
    attention: float  # scores and weighted sums (Q·Kᵀ and P·V) over each attention segment

    @property
    def total(self) -> float:
        return self.linear + self.attention

    @property
    def attention_overhead(self) -> float:
        """Total FLOPs as a multiple of the linear FLOPs (1.0 = attention is free)."""
        return self.total / self.linear


def _segment_square_sum(cu_seqlens: torch.Tensor) -> int:
    lengths = torch.diff(cu_seqlens.to(torch.int64))
    return int((lengths**2).sum())


MERGERS = ("merger", "deepstack_merger_list")  # linears run once per merged token (Qwen3-VL: each DeepStack level)


def vision_flops(vision: nn.Module, adapter: FamilyAdapter, grid_thw: torch.Tensor) -> VisionFlops:
    """FLOPs of one forward of ``vision`` over images of ``grid_thw`` (works on a meta-device tower too)."""
    config = vision.config
    patches = int(grid_thw.prod(-1).sum())
    merged = patches // config.spatial_merge_size**2
    linear = 0.0
    for name, module in vision.named_modules():
        if isinstance(module, nn.Linear):
            tokens = merged if name.startswith(MERGERS) else patches
            linear += 2.0 * tokens * module.in_features * module.out_features
        elif isinstance(module, nn.Conv3d):  # the patch embedding: one kernel application per patch
            linear += 2.0 * patches * module.weight[0].numel() * module.out_channels
    grid = adapter.grid_inputs(grid_thw.cpu(), config)
    full_blocks = set(getattr(config, "fullatt_block_indexes", None) or range(len(vision.blocks)))
    full = _segment_square_sum(grid["cu_seqlens"])
    windowed = _segment_square_sum(grid["cu_window_seqlens"]) if "cu_window_seqlens" in grid else None
    attention = 0.0
    for index, block in enumerate(vision.blocks):
        width = block.attn.proj.in_features
        squares = full if index in full_blocks or windowed is None else windowed
        attention += 4.0 * width * squares
    return VisionFlops(linear=linear, attention=attention)
