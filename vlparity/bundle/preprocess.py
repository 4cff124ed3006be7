"""``vision/preprocess.json``: everything ``vision_inference.py`` needs to redo the processor's work without it.

Only processors whose maths the script reproduces bit for bit are accepted: the torchvision backend (the default
``Qwen2VLImageProcessor`` in transformers 5.24) with bicubic or bilinear resampling. Anything else is refused here,
at bundle time, instead of producing embeddings from silently different pixels.
"""

from __future__ import annotations

import math
from typing import Any

from vlparity.errors import UnsupportedModelError

PREPROCESS_FORMAT = 1
RESAMPLE_NAMES = {2: "bilinear", 3: "bicubic"}  # PIL.Image.Resampling values the script's kernel implements


def preprocess_config(image_processor: Any, vision_config: dict[str, Any], onnx_inputs: list[str]) -> dict[str, Any]:
    """The processor's settings plus the vision tower's window parameters, as plain JSON values."""
    name = type(image_processor).__name__
    backend = getattr(image_processor, "backend", None)
    if backend != "torchvision":
        raise UnsupportedModelError(
            f"image processor {name} uses the {backend!r} backend; the bundle reproduces the torchvision backend "
            "(transformers' default Qwen2VLImageProcessor). Load the processor without use_fast=False."
        )
    resample = RESAMPLE_NAMES.get(int(image_processor.resample))
    if resample is None:
        raise UnsupportedModelError(
            f"image processor {name}: resample={image_processor.resample!r} is not implemented by the bundle's "
            f"numpy resize (supported: {', '.join(f'{k} ({v})' for k, v in RESAMPLE_NAMES.items())})."
        )
    size = image_processor.size
    windowed = "window_index" in onnx_inputs
    return {
        "format": PREPROCESS_FORMAT,
        "image_processor": name,
        "do_resize": bool(image_processor.do_resize),
        "resample": resample,
        "min_pixels": int(size["shortest_edge"]),
        "max_pixels": int(size["longest_edge"]),
        "do_rescale": bool(image_processor.do_rescale),
        "rescale_factor": float(image_processor.rescale_factor),
        "do_normalize": bool(image_processor.do_normalize),
        "image_mean": [float(value) for value in image_processor.image_mean],
        "image_std": [float(value) for value in image_processor.image_std],
        "patch_size": int(image_processor.patch_size),
        "temporal_patch_size": int(image_processor.temporal_patch_size),
        "merge_size": int(image_processor.merge_size),
        "vision": {
            "spatial_merge_size": int(vision_config["spatial_merge_size"]),
            "patch_size": int(vision_config["patch_size"]),
            "windowed": windowed,
            "window_size": int(vision_config["window_size"]) if windowed else None,
            # Qwen3-VL's learned position table (side × side entries), resampled per image by the script
            "position_table_side": (
                math.isqrt(int(vision_config["num_position_embeddings"])) if "interp_indices" in onnx_inputs else None
            ),
        },
        "onnx_inputs": list(onnx_inputs),
    }
