"""Qwen3-VL: every vision block attends within each image; a learned position-embedding table, bilinearly resampled
to each image's grid, is added after the patch embedding; and the tower hands the LM, beside the image embeddings,
one DeepStack feature per ``deepstack_visual_indexes`` entry, which the LM adds at the image positions after its
first decoder layers (level k after layer k)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import vision_utils

from vlparity.adapters.qwen2_vl import Qwen2_VLAdapter, full_attention_inputs
from vlparity.errors import UnsupportedModelError
from vlparity.export.vision_graph import DeepStackVisionGraph
from vlparity.vision_features import EMBEDDINGS, VisionFeatures, deepstack_name

# How Qwen3VLVisionModel resamples its position table (its interpolation_mode / interpolation_align_corners).
INTERPOLATION = {"mode": "bilinear", "align_corners": True}


class Qwen3_VLAdapter(Qwen2_VLAdapter):
    """Qwen2-VL's attention layout (no windows) plus the learned position table and the DeepStack features."""

    model_type = "qwen3_vl"

    @property
    def model_class(self) -> type[nn.Module]:
        from transformers import Qwen3VLForConditionalGeneration

        return Qwen3VLForConditionalGeneration

    @property
    def vision_class(self) -> type[nn.Module]:
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

        return Qwen3VLVisionModel

    def check_config(self, config: dict[str, Any], source: str) -> None:
        """Also: the LM adds DeepStack level k to the image positions after its decoder layer k (transformers' own
        forward); a level added after its last layer reaches no text token, and levels beyond it are dropped, both
        without a word. So the LM needs more layers than there are levels (the published ones: 28-36 for 3)."""
        super().check_config(config, source)
        levels = len(config["vision_config"].get("deepstack_visual_indexes", []))
        layers = config.get("text_config", {}).get("num_hidden_layers")
        if isinstance(layers, int) and levels and layers <= levels:
            raise UnsupportedModelError(
                f"{source}: text_config.num_hidden_layers is {layers} for {levels} DeepStack levels "
                "(vision_config.deepstack_visual_indexes); the LM adds level k after its layer k, so level "
                f"{layers - 1} and beyond would never reach a text token. The LM needs more layers than levels; "
                "fix config.json."
            )

    def check_vision_config(self, vision_config: dict[str, Any], source: str) -> None:
        """The position table must be square, and every DeepStack level must tap an existing block."""
        super().check_vision_config(vision_config, source)
        positions = vision_config.get("num_position_embeddings")
        if not isinstance(positions, int) or positions < 1 or math.isqrt(positions) ** 2 != positions:
            raise UnsupportedModelError(
                f"{source}: vision_config.num_position_embeddings is {positions!r}; Qwen3-VL resamples a square "
                "position table (side × side entries, 2304 = 48² in the published models). Fix config.json."
            )
        depth, levels = vision_config.get("depth"), vision_config.get("deepstack_visual_indexes", [])
        outside = [index for index in levels if not isinstance(index, int) or not 0 <= index < (depth or 0)]
        if outside:
            raise UnsupportedModelError(
                f"{source}: vision_config.deepstack_visual_indexes {levels} names block(s) {outside} outside the "
                f"tower's {depth} blocks (depth). Fix config.json."
            )

    def feature_outputs(self, vision_config: Any) -> list[str]:
        levels = len(vision_config.deepstack_visual_indexes)
        return [EMBEDDINGS, *(deepstack_name(level) for level in range(levels))]

    def grid_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, torch.Tensor]:
        """Qwen2-VL's (every block attends within each image) plus the position table's bilinear taps and weights."""
        indices, weights = vision_utils.get_vision_interpolation_indices_and_weights(
            grid_thw, num_grid_per_side=math.isqrt(vision_config.num_position_embeddings),
            spatial_merge_size=vision_config.spatial_merge_size, **INTERPOLATION,
        )  # fmt: skip
        return {**super().grid_inputs(grid_thw, vision_config), "interp_indices": indices, "interp_weights": weights}

    def export_graph(self, vision: nn.Module, attention: str = "segments") -> nn.Module:
        from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision

        return DeepStackVisionGraph(vision, apply_rotary_pos_emb_vision, attention)

    def export_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, np.ndarray]:
        grid = self.grid_inputs(grid_thw.cpu(), vision_config)
        return {
            **full_attention_inputs(grid),
            "interp_indices": grid["interp_indices"].numpy().astype(np.int64),
            "interp_weights": grid["interp_weights"].numpy().astype(np.float32),
        }

    def encoder_outputs(self, features: VisionFeatures[torch.Tensor]) -> dict[str, Any]:
        """Embeddings and DeepStack levels: an LM fed the embeddings alone would fail (or, given an empty list,
        silently skip DeepStack)."""
        from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

        if not features.deepstack:
            raise ValueError("Qwen3-VL's LM needs the DeepStack features beside the image embeddings; none were given")
        return {
            "image": BaseModelOutputWithDeepstackFeatures(
                pooler_output=tuple(features.embeddings),
                deepstack_features=[tuple(level) for level in features.deepstack],
            )
        }
