"""Parity inputs: samples (images + prompt), how they are read, and how a processor turns them into tensors."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vlparity.errors import InputFileError, PromptError
from vlparity.model_source import FIXTURES_DIR
from vlparity.static_shape import StaticShape

log = logging.getLogger(__name__)
FIXTURE_IMAGES_DIR = FIXTURES_DIR / "images"
FIXTURE_PROMPTS_FILE = FIXTURES_DIR / "prompts.json"
MIN_IMAGE_SIDE = 2  # the Qwen processors reject (or divide by zero on) 1-pixel sides
# The Qwen VL families' vision markers: the chat template writes them, one group per image; in a prompt's own text they
# would be a placeholder without an image.
VISION_MARKERS = ("<|vision_start|>", "<|image_pad|>", "<|video_pad|>", "<|vision_end|>")
# Transparent pixels are composited onto white, as transformers' ``convert_to_rgb`` does: the RGB stored under a
# transparent pixel is invisible to the user and must be invisible to the model too.
TRANSPARENCY_BACKGROUND = (255, 255, 255)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # 16-bit greyscale PNG/TIFF as Pillow opens it


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
        """Check the prompt and open every image now, so bad input fails before any model work starts."""
        check_prompt(self.prompt)
        for path in self.images:
            load_image(path)

    def messages(self) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in self.images]
        content.append({"type": "text", "text": self.prompt})
        return [{"role": "user", "content": content}]


def load_image(path: Path) -> Image.Image:
    """Open an image as the user sees it, in RGB, with an error that names the file for anything unusable.

    Follows transformers' ``load_image``: the EXIF orientation is applied. Beyond it (where a plain ``convert("RGB")``
    would show the model something else): transparency is composited onto ``TRANSPARENCY_BACKGROUND``, 16-bit greyscale
    is scaled to 8 bit (not clipped to white), and of an animated image the first frame is taken, with a warning.
    """
    if not path.is_file():
        raise InputFileError(f"--image {path}: no such file. Check the path (globs are expanded by the shell).")
    if path.stat().st_size == 0:
        raise InputFileError(f"--image {path}: the file is empty (0 bytes). Re-export or re-download the image.")
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            image.load()
            rgb = _as_rgb(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputFileError(
            f"--image {path}: not a readable image ({exc}). Use a PNG, JPEG or another format Pillow can open."
        ) from exc
    if frames > 1:
        _warn_once(f"--image {path}: animated ({frames} frames); only its first frame is judged.")
    if min(rgb.size) < MIN_IMAGE_SIDE:
        raise InputFileError(
            f"--image {path}: {rgb.width}x{rgb.height} px is too small for the Qwen VL processor; "
            f"both sides must be at least {MIN_IMAGE_SIDE} px."
        )
    return rgb


def _as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of what the image shows."""
    if image.mode in SIXTEEN_BIT_MODES:
        levels = np.asarray(image, dtype=np.float64) / 257.0  # 65535 → 255
        return Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "L").convert("RGB")
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENCY_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


@cache
def _warn_once(message: str) -> None:
    """Every path loads each image again: say it once per run, not once per load."""
    log.warning(message)


def check_prompt(prompt: str) -> None:
    """vlparity places one image placeholder per image itself (through the chat template): one in the prompt's own
    text would have no image behind it."""
    markers = [marker for marker in VISION_MARKERS if marker in prompt]
    if markers:
        raise PromptError(
            f"--prompt {prompt!r}: contains the vision marker(s) {', '.join(markers)}. vlparity inserts one image "
            "placeholder per --image through the chat template; remove them from the prompt text."
        )


def check_placeholders(processor: Any, text: str, sample: Sample) -> None:
    """The chat template must render exactly one image placeholder per image (a text-only template renders none)."""
    token = getattr(processor, "image_token", None)
    found = text.count(token) if token else len(sample.images)
    if found != len(sample.images):
        directory = getattr(processor.tokenizer, "name_or_path", "") or "the model"
        raise PromptError(
            f"{directory}: its chat template (chat_template.jinja or tokenizer_config.json) rendered {found} image "
            f"placeholder(s) {token} for the {len(sample.images)} image(s) of prompt {sample.prompt!r}. It must write "
            "one per {'type': 'image'} content item; restore the model's original chat template."
        )


def sample_images(sample: Sample, static_shape: StaticShape | None = None) -> list[Image.Image]:
    """The sample's images as the processor receives them: each resized to exactly ``static_shape`` when the run has
    one (``--static-shape``), for every path alike, so parity is judged at that size."""
    images = [load_image(path) for path in sample.images]
    return [static_shape.resize(image) for image in images] if static_shape else images


def preprocess(processor: Any, sample: Sample, static_shape: StaticShape | None = None) -> dict[str, Any]:
    """Chat template + processor → model inputs (``input_ids``, ``pixel_values``, ``image_grid_thw``, …)."""
    check_prompt(sample.prompt)
    text = processor.apply_chat_template(sample.messages(), add_generation_prompt=True, tokenize=False)
    check_placeholders(processor, text, sample)
    images = sample_images(sample, static_shape) or None
    return dict(processor(text=[text], images=images, return_tensors="pt"))


def fixture_images() -> list[Path]:
    return sorted(FIXTURE_IMAGES_DIR.glob("*.png"))


def fixture_prompts() -> list[str]:
    return list(json.loads(FIXTURE_PROMPTS_FILE.read_text()))


def default_samples() -> list[Sample]:
    """Every fixture image with the first fixture prompt: the main job's inputs when none are given."""
    prompt = fixture_prompts()[0]
    return [Sample(images=(image,), prompt=prompt) for image in fixture_images()]
