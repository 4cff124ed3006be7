"""Parity inputs: samples (images + prompt), how they are read, and how a processor turns them into tensors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from vlparity.errors import InputFileError
from vlparity.model_source import FIXTURES_DIR

FIXTURE_IMAGES_DIR = FIXTURES_DIR / "images"
FIXTURE_PROMPTS_FILE = FIXTURES_DIR / "prompts.json"
MIN_IMAGE_SIDE = 2  # the Qwen processors reject (or divide by zero on) 1-pixel sides


@dataclass(frozen=True)
class Sample:
    """One prompt with zero or more images, compared across paths as a unit."""

    images: tuple[Path, ...]
    prompt: str

    @property
    def sample_id(self) -> str:
        stems = "+".join(path.stem for path in self.images) or "text"
        slug = re.sub(r"[^a-z0-9]+", "-", self.prompt.lower()).strip("-")[:40]
        return f"{stems}|{slug}"

    def validate(self) -> None:
        """Open every image now, so a bad file fails before any model work starts."""
        for path in self.images:
            load_image(path)

    def messages(self) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in self.images]
        content.append({"type": "text", "text": self.prompt})
        return [{"role": "user", "content": content}]


def load_image(path: Path) -> Image.Image:
    """Open an image as RGB, with an error that names the file for anything unusable."""
    if not path.is_file():
        raise InputFileError(f"--image {path}: no such file. Check the path (globs are expanded by the shell).")
    if path.stat().st_size == 0:
        raise InputFileError(f"--image {path}: the file is empty (0 bytes). Re-export or re-download the image.")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputFileError(
            f"--image {path}: not a readable image ({exc}). Use a PNG, JPEG or another format Pillow can open."
        ) from exc
    if min(rgb.size) < MIN_IMAGE_SIDE:
        raise InputFileError(
            f"--image {path}: {rgb.width}x{rgb.height} px is too small for the Qwen VL processor; "
            f"both sides must be at least {MIN_IMAGE_SIDE} px."
        )
    return rgb


def preprocess(processor: Any, sample: Sample) -> dict[str, Any]:
    """Chat template + processor → model inputs (``input_ids``, ``pixel_values``, ``image_grid_thw``, …)."""
    text = processor.apply_chat_template(sample.messages(), add_generation_prompt=True, tokenize=False)
    images = [load_image(path) for path in sample.images] or None
    return dict(processor(text=[text], images=images, return_tensors="pt"))


def fixture_images() -> list[Path]:
    return sorted(FIXTURE_IMAGES_DIR.glob("*.png"))


def fixture_prompts() -> list[str]:
    return list(json.loads(FIXTURE_PROMPTS_FILE.read_text()))


def default_samples() -> list[Sample]:
    """Every fixture image with the first fixture prompt: the main job's inputs when none are given."""
    prompt = fixture_prompts()[0]
    return [Sample(images=(image,), prompt=prompt) for image in fixture_images()]
