"""What a vision encoder hands the language model, per image: the embeddings placed at the image tokens and, for a
family with DeepStack (Qwen3-VL), one more feature tensor per DeepStack level that the LM adds to the image positions
after its first decoder layers. Every path produces one, every check judges each named output on its own: an export
that drops or garbles a DeepStack level is invisible in the embeddings alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch

EMBEDDINGS = "image_embeds"  # also the ONNX graph's output name
DEEPSTACK_PREFIX = "deepstack_"  # ONNX outputs deepstack_0, deepstack_1, … in level order

T = TypeVar("T", torch.Tensor, np.ndarray)
U = TypeVar("U", torch.Tensor, np.ndarray)


def deepstack_name(level: int) -> str:
    return f"{DEEPSTACK_PREFIX}{level}"


@dataclass(frozen=True)
class VisionFeatures(Generic[T]):
    """Per-image ``[tokens, hidden]`` tensors: ``embeddings[i]`` for image i, ``deepstack[level][i]`` likewise."""

    embeddings: list[T] = field(default_factory=list)
    deepstack: tuple[list[T], ...] = ()

    def __post_init__(self) -> None:
        for level, features in enumerate(self.deepstack):
            if len(features) != len(self.embeddings):
                raise ValueError(
                    f"DeepStack level {level} has {len(features)} images, the embeddings {len(self.embeddings)}"
                )

    def named(self) -> dict[str, list[T]]:
        """Every output by name, embeddings first, then the DeepStack levels in order."""
        return {EMBEDDINGS: self.embeddings} | {deepstack_name(i): level for i, level in enumerate(self.deepstack)}

    @property
    def images(self) -> int:
        return len(self.embeddings)

    def map(self, convert: Callable[[T], U]) -> VisionFeatures[U]:
        """The same structure with ``convert`` applied to every tensor."""
        return VisionFeatures(
            [convert(x) for x in self.embeddings], tuple([convert(x) for x in level] for level in self.deepstack)
        )

    @classmethod
    def from_named(cls, outputs: dict[str, list[T]]) -> VisionFeatures[T]:
        """Inverse of :meth:`named`; the DeepStack levels must be numbered 0, 1, … without gaps."""
        levels = sorted(int(name[len(DEEPSTACK_PREFIX) :]) for name in outputs if name.startswith(DEEPSTACK_PREFIX))
        if levels != list(range(len(levels))):
            raise ValueError(f"DeepStack outputs must be numbered 0..{len(levels) - 1}, got {levels}")
        return cls(outputs[EMBEDDINGS], tuple(outputs[deepstack_name(level)] for level in levels))


def feature_arrays(features: VisionFeatures[torch.Tensor]) -> VisionFeatures[np.ndarray]:
    """The features as the comparators take them: float32 numpy arrays on the host."""
    return features.map(lambda tensor: tensor.float().cpu().numpy())
