"""``original``: the Hugging Face model exactly as published, the reference every other path is judged against."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vlparity.errors import ModelWeightsError
from vlparity.inputs import Sample
from vlparity.paths.base import PathContext, PathRunner, capture_block_outputs, realign_parameters
from vlparity.vision_features import VisionFeatures


def load_source_model(context: PathContext, dtype: torch.dtype, device_map: str | None = None) -> nn.Module:
    """The source checkpoint through transformers (on the CPU unless ``device_map`` places it), refusing what would
    otherwise load silently wrong or unsafely: pickle-based or truncated weight files, tensors shaped unlike
    ``config.json`` (transformers would re-initialise them at random) or missing from the checkpoint."""
    source = context.source
    source.check_weight_files()
    model, info = context.adapter.model_class.from_pretrained(
        source.directory, dtype=dtype, device_map=device_map, use_safetensors=True,
        trust_remote_code=context.trust_remote_code, ignore_mismatched_sizes=True, output_loading_info=True,
    )  # fmt: skip
    mismatched, missing = info["mismatched_keys"], info["missing_keys"]
    if mismatched or missing:
        shapes = [f"{key} {list(found)} (config.json says {list(expected)})" for key, found, expected in mismatched]
        problems = [
            f"{len(mismatched)} tensor(s) shaped unlike it, e.g. {'; '.join(shapes[:2])}" if mismatched else "",
            f"{len(missing)} tensor(s) missing, e.g. {sorted(missing)[:3]}" if missing else "",
        ]
        raise ModelWeightsError(
            f"--model {source.reference}: the *.safetensors weights do not fit config.json: "
            f"{'; '.join(filter(None, problems))}. The weights and config.json come from different models or the files "
            "are damaged; download the checkpoint again."
        )
    return realign_parameters(model).eval()


def load_original(context: PathContext) -> tuple[nn.Module, Any]:
    """The full model and its processor in the run's dtype, on the run's device (or placed by ``--device-map``)."""
    from transformers import AutoProcessor

    model = load_source_model(context, context.dtype, context.device_map)
    if context.device_map is None:
        model = model.to(context.device)
    processor = AutoProcessor.from_pretrained(context.source.directory, trust_remote_code=context.trust_remote_code)
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

    def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures[torch.Tensor]:
        output = self.model.model.get_image_features(pixel_values, grid_thw)
        return self.context.adapter.features_from(output, grid_thw, self.model.config.vision_config.spatial_merge_size)

    @property
    def language_model(self) -> nn.Module:
        return self.model

    @torch.inference_mode()
    def vision_block_outputs(self, sample: Sample) -> list[np.ndarray]:
        """Every vision block's output (forward hooks), the reference for locating a divergence."""
        inputs = self.preprocess(sample)
        vision = self.context.adapter.vision_tower(self.model)
        return capture_block_outputs(
            vision, lambda: self.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        )

    def model_inputs(self, sample: Sample) -> dict[str, Any]:
        """The processor's outputs, pixels included: the reference runs the HF model as-is, vision inside."""
        return self.preprocess(sample)

    def model_inputs_with(self, inputs: dict[str, Any], features: VisionFeatures[torch.Tensor]) -> dict[str, Any]:
        return inputs
