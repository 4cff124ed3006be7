"""What every model family must tell vlparity: where its vision tower is and how its LM takes image embeddings."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vlparity.errors import UnsupportedModelError
from vlparity.vision_features import EMBEDDINGS, VisionFeatures


class FamilyAdapter(ABC):
    """Family-specific knowledge, kept out of paths and exporters.

    Subclasses name the transformers classes of one ``model_type`` and compute the grid-dependent vision inputs with
    transformers' own helpers (``transformers.vision_utils``), so that a path can feed them explicitly (and an
    exporter can make them graph inputs).
    """

    model_type: ClassVar[str]
    vision_prefix: ClassVar[str] = "model.visual."

    @property
    @abstractmethod
    def model_class(self) -> type[nn.Module]:
        """The ``*ForConditionalGeneration`` class."""

    @property
    @abstractmethod
    def vision_class(self) -> type[nn.Module]:
        """The vision tower's ``PreTrainedModel`` class (loadable on its own with ``from_pretrained``)."""

    def vision_tower(self, model: nn.Module) -> nn.Module:
        return model.model.visual

    def detach_vision_tower(self, model: nn.Module, replacement: nn.Module) -> None:
        model.model.visual = replacement

    def check_config(self, config: dict[str, Any], source: str) -> None:
        """Refuse, before any model work, a config.json this family's own code cannot run (or would run silently
        wrong): raise UnsupportedModelError (one line) naming the field and the remedy."""
        self.check_vision_config(config["vision_config"], source)

    def check_vision_config(self, vision_config: dict[str, Any], source: str) -> None:
        """Refuse, before any model work, a vision configuration this family's own code cannot run: raise
        UnsupportedModelError (one line) naming the field and the remedy."""
        for name in ("patch_size", "spatial_merge_size", "temporal_patch_size"):
            value = vision_config.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UnsupportedModelError(
                    f"{source}: vision_config.{name} is {value!r}; the {self.model_type} vision tower needs a positive "
                    "integer (patches and merged tokens are built from it). Fix config.json."
                )

    @abstractmethod
    def grid_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, torch.Tensor]:
        """Grid-dependent index tensors the vision tower would otherwise compute in Python loops."""

    @abstractmethod
    def export_graph(self, vision: nn.Module, attention: str = "segments") -> nn.Module:
        """An exportable copy of the tower's forward (``export.vision_graph.VisionGraph``) sharing its weights;
        ``attention`` is ``segments`` (per-segment SDPA) or ``mask`` (block-diagonal mask, for comparison)."""

    @abstractmethod
    def export_inputs(self, grid_thw: torch.Tensor, vision_config: Any) -> dict[str, np.ndarray]:
        """The exported graph's index inputs for ``grid_thw`` (everything but ``pixel_values``), in input order."""

    def feature_outputs(self, vision_config: Any) -> list[str]:
        """The named outputs the LM takes from the vision encoder (ONNX output names too): the image embeddings."""
        return [EMBEDDINGS]

    def encode_images(
        self, vision: nn.Module, pixel_values: torch.Tensor, grid_thw: torch.Tensor
    ) -> VisionFeatures[torch.Tensor]:
        """Run a standalone vision tower with explicit grid inputs; per image ``[tokens, hidden]`` tensors."""
        output = vision(pixel_values.to(vision.dtype), grid_thw=grid_thw, **self.grid_inputs(grid_thw, vision.config))
        return self.features_from(output, grid_thw, vision.config.spatial_merge_size)

    @staticmethod
    def features_from(output: Any, grid_thw: torch.Tensor, merge: int) -> VisionFeatures[torch.Tensor]:
        """A tower's output (``pooler_output`` and, with DeepStack, ``deepstack_features``: all images concatenated,
        or already one chunk per image as ``get_image_features`` returns them) as per-image features."""
        sizes = (grid_thw.prod(-1) // merge**2).tolist()

        def per_image(tensor: torch.Tensor | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
            return list(tensor) if isinstance(tensor, list | tuple) else list(torch.split(tensor, sizes))

        deepstack = getattr(output, "deepstack_features", None) or ()
        return VisionFeatures(per_image(output.pooler_output), tuple(per_image(level) for level in deepstack))

    def encoder_outputs(self, features: VisionFeatures[torch.Tensor]) -> dict[str, BaseModelOutputWithPooling]:
        """The ``mm_encoder_outputs`` argument that makes the LM skip its own vision tower."""
        return {"image": BaseModelOutputWithPooling(pooler_output=tuple(features.embeddings))}
