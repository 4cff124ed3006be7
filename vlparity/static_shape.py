"""``--static-shape WxH``: one fixed image size for a whole run, as NPU toolchains need it (issue #18).

Every image is resized to exactly W×H before the processor, for every path (``original`` included, so parity is judged
at that size), and the ``onnx*`` paths export their vision encoder for that size only (opset 17, no dynamic axes). A
size is valid when the processor keeps it as it is: both sides multiples of ``patch_size × merge_size`` and W·H within
its ``min_pixels``/``max_pixels``; otherwise the processor would resize it again and the exported shape would not be
the one fed.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vlparity.errors import UsageError

_PATTERN = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
RESAMPLE = Image.Resampling.BICUBIC  # the Qwen VL processors' own filter (resample 3)


@dataclass(frozen=True)
class StaticShape:
    """An image size in pixels, written ``WIDTHxHEIGHT`` as on the command line."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    def grid_thw(self, patch_size: int) -> list[int]:
        """The processor's ``image_grid_thw`` row for one still image of this size (one temporal patch)."""
        return [1, self.height // patch_size, self.width // patch_size]

    def resize(self, image: Image.Image) -> Image.Image:
        """``image`` at exactly this size (aspect ratio not kept: a fixed-shape graph takes one size only)."""
        size = (self.width, self.height)
        return image if image.size == size else image.resize(size, RESAMPLE)


def parse_static_shape(text: str) -> StaticShape:
    """``--static-shape`` → StaticShape; a malformed value is an argparse error (usage error, exit 2)."""
    match = _PATTERN.match(text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT in pixels, e.g. 448x448")
    return StaticShape(int(match[1]), int(match[2]))


def processor_keeps(shape: StaticShape, image_processor: Any) -> bool:
    """Whether the processor leaves an image of ``shape`` at that size (its own ``smart_resize`` says so)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = image_processor.patch_size * image_processor.merge_size
    size = image_processor.size
    try:
        resized = smart_resize(shape.height, shape.width, factor, size["shortest_edge"], size["longest_edge"])
    except ValueError:  # aspect ratio beyond 200
        return False
    return resized == (shape.height, shape.width)


def nearest_valid_shapes(shape: StaticShape, image_processor: Any, count: int = 3) -> list[StaticShape]:
    """Valid sizes closest to ``shape``: each side rounded down and up to the factor, and the size the processor
    itself would resize ``shape`` to."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = image_processor.patch_size * image_processor.merge_size
    size = image_processor.size

    def around(side: int) -> set[int]:
        return {max(factor, side // factor * factor), max(factor, -(-side // factor) * factor)}

    candidates = {StaticShape(w, h) for w in around(shape.width) for h in around(shape.height)}
    try:
        height, width = smart_resize(shape.height, shape.width, factor, size["shortest_edge"], size["longest_edge"])
        candidates.add(StaticShape(width, height))
    except ValueError:
        pass
    valid = [c for c in candidates if processor_keeps(c, image_processor)]
    return sorted(valid, key=lambda c: (abs(c.width - shape.width) + abs(c.height - shape.height), str(c)))[:count]


def check_static_shape(shape: StaticShape, image_processor: Any) -> None:
    """Raise UsageError naming the broken rule and the nearest valid sizes when the processor would not keep
    ``shape``."""
    if processor_keeps(shape, image_processor):
        return
    factor = image_processor.patch_size * image_processor.merge_size
    low, high = image_processor.size["shortest_edge"], image_processor.size["longest_edge"]
    off_grid = [str(side) for side in (shape.width, shape.height) if side % factor]
    pixels = shape.width * shape.height
    broken = [f"{' and '.join(off_grid)} not a multiple of {factor}"] if off_grid else []
    broken += [f"W·H = {pixels} pixels outside {low}–{high}"] if not low <= pixels <= high else []
    reason = "; ".join(broken) or "aspect ratio over 200"
    nearest = nearest_valid_shapes(shape, image_processor)
    raise UsageError(
        f"--static-shape {shape}: the processor would resize it again ({reason}). "
        f"Both sides must be multiples of {factor} (patch_size {image_processor.patch_size} × merge_size "
        f"{image_processor.merge_size}) and W·H within the processor's {low}–{high} pixels (size shortest_edge/"
        f"longest_edge). Nearest valid: {', '.join(map(str, nearest)) or 'none'}."
    )
