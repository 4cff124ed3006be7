"""``original``: the Hugging Face model exactly as published, the reference every other path is judged against."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vlparity.inputs import Sample, preprocess
from vlparity.paths.base import Generation, PathContext, PathRunner, capture_block_outputs
from vlparity.paths.language import greedy_generate, language_inputs_with, teacher_forced_logits, to_device


def load_original(context: PathContext) -> tuple[nn.Module, Any]:
    """The full model and its processor, loaded from the source checkpoint in the run's dtype on the run's device."""
    from transformers import AutoProcessor

    directory = context.source.directory
    model = context.adapter.model_class.from_pretrained(directory, dtype=context.dtype).to(context.device).eval()
    processor = AutoProcessor.from_pretrained(directory)
    return model, processor


class OriginalPath(PathRunner):
    name = "original"
    description = "Hugging Face model as-is (torch vision + torch LM in one module)"

    def __init__(self, context: PathContext) -> None:
        super().__init__(context)
        self.model: nn.Module | None = None
        self.processor: Any = None

    def _prepare(self) -> None:
        self.model, self.processor = load_original(self.context)

    def preprocess(self, sample: Sample) -> dict[str, Any]:
        self.prepare()
        with self.timer.stage("preprocess"):
            return to_device(preprocess(self.processor, sample), self.context.device)

    @torch.inference_mode()
    def vision_encode(self, inputs: dict[str, Any]) -> list[torch.Tensor]:
        if "pixel_values" not in inputs:
            return []
        with self.timer.stage("vision_encode"):
            features = self.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            return list(features.pooler_output)

    def language_inputs(self, sample: Sample) -> dict[str, Any]:
        inputs = self.preprocess(sample)
        return language_inputs_with(self.context.adapter, inputs, self.vision_encode(inputs))

    @property
    def language_model(self) -> nn.Module:
        return self.model

    def encode_images(self, sample: Sample) -> list[np.ndarray]:
        return [embedding.float().cpu().numpy() for embedding in self.vision_encode(self.preprocess(sample))]

    @torch.inference_mode()
    def vision_block_outputs(self, sample: Sample) -> list[np.ndarray]:
        """Every vision block's output (forward hooks), the reference for locating a divergence."""
        inputs = self.preprocess(sample)
        vision = self.context.adapter.vision_tower(self.model)
        return capture_block_outputs(
            vision, lambda: self.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        )

    def generate(self, sample: Sample, max_new_tokens: int) -> Generation:
        inputs = self.preprocess(sample)
        with self.timer.stage("generate"):
            return greedy_generate(self.model, inputs, max_new_tokens)

    def score(self, sample: Sample, tokens: np.ndarray) -> np.ndarray:
        inputs = self.preprocess(sample)
        with self.timer.stage("teacher_forced"):
            return teacher_forced_logits(self.model, inputs, tokens)
