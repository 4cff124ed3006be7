"""Hypothesis strategies for benign inputs: any image size the processor accepts, pixel content from a seed, prompts
(fixture or random short text), written to PNG files the paths read like any user image."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from vlparity.inputs import MIN_IMAGE_SIDE, Sample, fixture_prompts

MAX_SIDE = 700
MAX_ASPECT = 150  # the Qwen processors refuse aspect ratios above 200
CONTENTS = ("solid", "noise", "gradient")
# Printable text without the characters of chat-template markers (``<|image_pad|>``): a prompt, not an injection.
PROMPT_ALPHABET = string.ascii_letters + string.digits + " .,?!'-"

image_sizes = st.tuples(st.integers(MIN_IMAGE_SIDE, MAX_SIDE), st.integers(MIN_IMAGE_SIDE, MAX_SIDE)).filter(
    lambda wh: max(wh) / min(wh) <= MAX_ASPECT
)


@dataclass(frozen=True)
class ImageSpec:
    width: int
    height: int
    content: str  # one of CONTENTS
    seed: int

    def pixels(self) -> np.ndarray:
        """``[height, width, 3]`` uint8: one colour, uniform noise, or a linear gradient in a random direction."""
        rng = np.random.default_rng(self.seed)
        shape = (self.height, self.width, 3)
        if self.content == "noise":
            return rng.integers(0, 256, shape, dtype=np.uint8)
        start, end = rng.integers(0, 256, (2, 3)).astype(np.float64)
        if self.content == "solid":
            return np.broadcast_to(start.astype(np.uint8), shape).copy()
        angle = rng.uniform(0, 2 * np.pi)
        rows, cols = np.mgrid[0 : self.height, 0 : self.width]
        along = cols * np.cos(angle) + rows * np.sin(angle)
        span = np.ptp(along)
        t = (along - along.min()) / span if span else np.zeros_like(along)
        return np.rint(start + (end - start) * t[..., None]).astype(np.uint8)

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.content}_{self.width}x{self.height}_{self.seed}.png"
        Image.fromarray(self.pixels()).save(path)
        return path


def images(contents: tuple[str, ...] = CONTENTS) -> st.SearchStrategy[ImageSpec]:
    return st.builds(
        lambda size, content, seed: ImageSpec(*size, content, seed),
        image_sizes,
        st.sampled_from(contents),
        st.integers(0, 2**16),
    )


prompts = st.one_of(
    st.sampled_from(fixture_prompts()),
    st.text(PROMPT_ALPHABET, min_size=1, max_size=40).filter(lambda text: text.strip()),
)


@dataclass(frozen=True)
class Case:
    """One benign sample: 1–2 images and a prompt."""

    images: tuple[ImageSpec, ...]
    prompt: str

    def sample(self, folder: Path) -> Sample:
        return Sample(tuple(spec.write(folder) for spec in self.images), self.prompt)


cases = st.builds(lambda specs, prompt: Case(tuple(specs), prompt), st.lists(images(), min_size=1, max_size=2), prompts)
