"""Standalone Qwen VL vision encoder: image files -> pixel patches -> ONNX vision model -> image embeddings.

Needs only numpy, Pillow and onnxruntime (no torch, no transformers). It reproduces the Hugging Face image processor
that the model was exported with, step by step, so that its ``pixel_values`` equal the processor's:

1. RGB conversion (transparency composited onto white, as ``transformers.image_transforms.convert_to_rgb``);
2. ``smart_resize`` to a multiple of ``patch_size * merge_size`` within ``[min_pixels, max_pixels]``;
3. the resize of the processor's default (torchvision) backend on a uint8 CPU tensor: PyTorch's antialiased separable
   kernel with int16 fixed-point weights (``aten/src/ATen/native/cpu/UpSampleKernel.cpp``). Pillow's own
   ``Image.resize`` uses a different fixed-point precision and differs by one grey level on some pixels, which is
   why the kernel is reimplemented here rather than delegated to Pillow;
4. rescale and normalise in float32 with the mean/std pre-multiplied by ``1 / rescale_factor`` (the processor's
   fused form);
5. patchify into ``[patches, channels * temporal_patch_size * patch_size**2]`` in merge-block order.

It then computes every grid-dependent index input of the exported graph (rotary position ids, per-image and
per-window segment layouts, window order, the learned position table's bilinear taps) and runs the model.

Usage::

    python vision_inference.py --image a.png [--image b.png] --output-dir out/

Writes ``out/image_embeds.npy`` (float32 ``[tokens, hidden]``, all images in order), for a model with DeepStack
(Qwen3-VL) one ``out/deepstack_<level>.npy`` per level (same layout), and ``out/grid.json`` (``image_grid_thw``,
``merge_size``, the token count of each image, the DeepStack files), which ``language_inference.py`` reads.
``--save-inputs`` also writes ``pixel_values.npy`` and ``onnx_inputs.npz`` (every array fed to the model).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
CONFIG_NAME = "preprocess.json"
MODEL_NAME = "vision.onnx"
SUPPORTED_FORMAT = 1
MAX_ASPECT_RATIO = 200  # the processor's limit


# --- 1. image loading ---------------------------------------------------------------------------------------------


def load_rgb(path: Path) -> np.ndarray:
    """``[height, width, 3]`` uint8 as vlparity's ``load_image`` reads it: EXIF orientation applied, transparency
    composited onto white as the processor does for PIL images, 16-bit greyscale scaled to 8 bit, first frame."""
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
            levels = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
            rgb = Image.fromarray(levels, "L").convert("RGB")
        elif "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(background, rgba).convert("RGB")
        else:
            rgb = image.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8)


# --- 2. target size -----------------------------------------------------------------------------------------------


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Both sides a multiple of ``factor``, area within ``[min_pixels, max_pixels]``, aspect ratio kept."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# --- 3. resize: PyTorch's uint8 antialiased kernel ----------------------------------------------------------------


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution with a = -0.5 (PIL's and PyTorch's antialiased bicubic filter), in float64."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


FILTERS = {"bicubic": (_cubic, 4), "bilinear": (_triangle, 2)}  # filter, interpolation size (taps at scale 1)


def axis_weights(in_size: int, out_size: int, resample: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(first_tap [out], int16-valued weights [out, taps], precision)`` for one axis.

    Mirrors ``_compute_indices_min_size_weights_aa`` and ``_compute_index_ranges_int16_weights``: float64 weights
    normalised per output sample, then scaled by ``2**precision`` (the largest precision below 22 bits at which the
    biggest weight still fits int16) and rounded half away from zero.
    """
    filter_fn, interp_size = FILTERS[resample]
    scale = in_size / out_size
    support = interp_size * 0.5 * scale if scale >= 1.0 else interp_size * 0.5
    taps = math.ceil(support) * 2 + 1
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (np.arange(out_size, dtype=np.float64) + 0.5)
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size)
    xsize = np.clip(xmax - xmin, 0, taps)
    offsets = np.arange(taps, dtype=np.int64)
    inside = offsets[None, :] < xsize[:, None]
    weights = np.where(inside, filter_fn(((offsets[None, :] + xmin[:, None]) - center[:, None] + 0.5) * invscale), 0.0)
    weights = _normalise_rows(weights)
    w_max = float(weights.max())
    precision = 0
    while precision < 22 and int(0.5 + w_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    scaled = weights * (1 << precision)
    rounded = np.trunc(np.where(scaled < 0, scaled - 0.5, scaled + 0.5)).astype(np.int64)
    return xmin, rounded, precision


def _normalise_rows(weights: np.ndarray) -> np.ndarray:
    """Divide each row by its sum accumulated left to right (the C loop's order), leaving all-zero rows alone."""
    total = np.zeros(weights.shape[0], dtype=np.float64)
    for column in range(weights.shape[1]):
        total = total + weights[:, column]
    safe = np.where(total != 0.0, total, 1.0)
    return np.where(total[:, None] != 0.0, weights / safe[:, None], weights)


def _resample_axis(image: np.ndarray, axis: int, out_size: int, resample: str) -> np.ndarray:
    """One separable pass over ``axis`` of a uint8 ``[H, W, C]`` image in int32 arithmetic, like the C kernel:
    half a unit plus the weighted taps, shifted right by the precision, saturated to 0..255."""
    in_size = image.shape[axis]
    xmin, weights, precision = axis_weights(in_size, out_size, resample)
    shape = [1] * image.ndim
    shape[axis] = out_size
    out_shape = list(image.shape)
    out_shape[axis] = out_size
    total = np.full(out_shape, 1 << (precision - 1), dtype=np.int32)
    for tap in range(weights.shape[1]):
        taps = np.take(image, np.minimum(xmin + tap, in_size - 1), axis=axis).astype(np.int32)
        total += taps * weights[:, tap].astype(np.int32).reshape(shape)
    return np.clip(total >> precision, 0, 255).astype(np.uint8)


def resize_uint8(image: np.ndarray, height: int, width: int, resample: str = "bicubic") -> np.ndarray:
    """``torchvision.transforms.v2.functional.resize(uint8 CHW tensor, antialias=True)`` on CPU, bit for bit:
    horizontal pass first, then vertical, each skipped when that side keeps its size."""
    if resample not in FILTERS:
        raise ValueError(f"resample {resample!r} is not supported (supported: {', '.join(FILTERS)})")
    if image.shape[1] != width:
        image = _resample_axis(image, 1, width, resample)
    if image.shape[0] != height:
        image = _resample_axis(image, 0, height, resample)
    return image


# --- 4-5. normalise and patchify ------------------------------------------------------------------------------------


def rescale_and_normalise(image: np.ndarray, config: dict) -> np.ndarray:
    """uint8 ``[H, W, C]`` -> float32 ``[C, H, W]`` with the processor's float32 arithmetic."""
    pixels = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    mean = np.asarray(config["image_mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(config["image_std"], dtype=np.float32)[:, None, None]
    if config["do_rescale"] and config["do_normalize"]:
        inverse = np.float32(1.0 / config["rescale_factor"])  # fused: mean and std scaled up instead of pixels down
        return (pixels - mean * inverse) / (std * inverse)
    if config["do_normalize"]:
        return (pixels - mean) / std
    if config["do_rescale"]:
        return pixels * np.float32(config["rescale_factor"])
    return pixels


def patchify(pixels: np.ndarray, config: dict) -> tuple[np.ndarray, int, int]:
    """``[C, H, W]`` -> ``[grid_h * grid_w, C * T * P * P]``, patches ordered merge block by merge block."""
    patch, merge, temporal = config["patch_size"], config["merge_size"], config["temporal_patch_size"]
    channels, height, width = pixels.shape
    grid_h, grid_w = height // patch, width // patch
    blocks = pixels.reshape(channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch)
    blocks = blocks.transpose(1, 4, 2, 5, 0, 3, 6)  # [gh/m, gw/m, m, m, C, P, P]
    frames = np.broadcast_to(blocks[:, :, :, :, :, None], (*blocks.shape[:5], temporal, patch, patch))
    return frames.reshape(grid_h * grid_w, channels * temporal * patch * patch), grid_h, grid_w


def preprocess(images: list[np.ndarray], config: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(pixel_values [patches, width] float32, image_grid_thw [images, 3] int64)`` like the HF processor."""
    factor = config["patch_size"] * config["merge_size"]
    patches, grids = [], []
    for image in images:
        if config["do_resize"]:
            height, width = smart_resize(
                image.shape[0], image.shape[1], factor, config["min_pixels"], config["max_pixels"]
            )
            image = resize_uint8(image, height, width, config["resample"])
        flat, grid_h, grid_w = patchify(rescale_and_normalise(image, config), config)
        patches.append(flat)
        grids.append([1, grid_h, grid_w])
    return np.concatenate(patches).astype(np.float32), np.asarray(grids, dtype=np.int64)


# --- grid-dependent graph inputs (transformers.vision_utils, in numpy) ---------------------------------------------


def position_ids(grid_thw: np.ndarray, merge: int) -> np.ndarray:
    """``[patches, 2]`` (row, column) of every patch, in merge-block order."""
    rows = []
    for t, h, w in grid_thw.tolist():
        hpos, wpos = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        shape = (h // merge, merge, w // merge, merge)
        hpos = hpos.reshape(shape).transpose(0, 2, 1, 3).reshape(-1)
        wpos = wpos.reshape(shape).transpose(0, 2, 1, 3).reshape(-1)
        rows.append(np.tile(np.stack([hpos, wpos], axis=-1), (t, 1)))
    return np.concatenate(rows).astype(np.int64)


def cu_seqlens(grid_thw: np.ndarray) -> np.ndarray:
    """Boundaries of the full-attention segments: one per frame of each image."""
    lengths = np.repeat(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0])
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def window_index(grid_thw: np.ndarray, merge: int, window_size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """``(merged-token order by window [tokens], window boundaries in patches)`` as Qwen2.5-VL's windowed blocks use."""
    indices, cu_windows, offset = [], [0], 0
    window = window_size // merge // patch
    unit = merge**2
    for t, h, w in grid_thw.tolist():
        llm_h, llm_w = h // merge, w // merge
        index = np.arange(t * llm_h * llm_w).reshape(t, llm_h, llm_w)
        pad_h, pad_w = window - llm_h % window, window - llm_w % window
        windows_h, windows_w = (llm_h + pad_h) // window, (llm_w + pad_w) // window
        padded = np.pad(index, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=-100)
        padded = padded.reshape(t, windows_h, window, windows_w, window).transpose(0, 1, 3, 2, 4)
        padded = padded.reshape(t, windows_h * windows_w, window, window)
        lengths = (padded != -100).sum(axis=(2, 3)).reshape(-1)
        flat = padded.reshape(-1)
        indices.append(flat[flat != -100] + offset)
        cu_windows.extend((np.cumsum(lengths) * unit + cu_windows[-1]).tolist())
        offset += t * llm_h * llm_w
    bounds = np.asarray(cu_windows, dtype=np.int64)
    keep = np.concatenate([[True], bounds[1:] != bounds[:-1]])  # torch.unique_consecutive
    return np.concatenate(indices).astype(np.int64), bounds[keep]


def segment_layout(cu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gather [S, L], valid [S, L], scatter [N])`` of the non-empty segments ``[cu[i], cu[i+1])``."""
    starts, lengths = cu[:-1], np.diff(cu)
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    width = int(lengths.max()) if lengths.size else 0
    offsets = np.arange(width, dtype=np.int64)
    valid = offsets[None, :] < lengths[:, None]
    gather = np.where(valid, starts[:, None] + offsets[None, :], 0).astype(np.int64)
    scatter = np.concatenate([np.arange(n, dtype=np.int64) + s * width for s, n in enumerate(lengths)])
    return gather, valid, scatter


def position_table_taps(grid_thw: np.ndarray, merge: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [patches, 4], weights [patches, 4])``: each patch's bilinear taps into a ``side × side`` learned
    position table resampled to its image's grid with ``align_corners=True`` (Qwen3-VL), in merge-block order."""
    positions = position_ids(grid_thw, merge)
    counts = grid_thw.prod(axis=-1)
    heights, widths = np.repeat(grid_thw[:, 1], counts), np.repeat(grid_thw[:, 2], counts)

    def axis(index: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = index.astype(np.float32) * np.float32(side - 1) / np.maximum(size - 1, 1).astype(np.float32)
        floor = np.floor(src)
        offsets = np.arange(2)
        taps = np.clip(floor.astype(np.int64)[:, None] + offsets, 0, side - 1)
        weights = np.clip(1 - np.abs(src[:, None] - floor[:, None] - offsets.astype(np.float32)), 0, None)
        return taps, weights.astype(np.float32)

    row_taps, row_weights = axis(positions[:, 0], heights)
    col_taps, col_weights = axis(positions[:, 1], widths)
    indices = (row_taps[:, :, None] * side + col_taps[:, None, :]).reshape(-1, 4)
    weights = (row_weights[:, :, None] * col_weights[:, None, :]).reshape(-1, 4)
    return indices.astype(np.int64), weights.astype(np.float32)


def graph_inputs(pixel_values: np.ndarray, grid_thw: np.ndarray, config: dict) -> dict[str, np.ndarray]:
    """Every input of the exported graph: ``pixel_values`` and the index arrays computed from the grid."""
    vision = config["vision"]
    full_gather, full_valid, full_scatter = segment_layout(cu_seqlens(grid_thw))
    inputs = {
        "pixel_values": pixel_values,
        "position_ids": position_ids(grid_thw, vision["spatial_merge_size"]),
        "full_gather": full_gather,
        "full_valid": full_valid,
        "full_scatter": full_scatter,
    }
    if vision.get("position_table_side"):
        taps = position_table_taps(grid_thw, vision["spatial_merge_size"], vision["position_table_side"])
        inputs.update(interp_indices=taps[0], interp_weights=taps[1])
    if vision["windowed"]:
        order, cu_windows = window_index(
            grid_thw, vision["spatial_merge_size"], vision["window_size"], vision["patch_size"]
        )
        window_gather, window_valid, window_scatter = segment_layout(cu_windows)
        inputs.update(
            window_gather=window_gather,
            window_valid=window_valid,
            window_scatter=window_scatter,
            window_index=order,
            reverse_index=np.argsort(order, kind="stable").astype(np.int64),
        )
    return inputs


# --- running --------------------------------------------------------------------------------------------------------


def load_config(path: Path) -> dict:
    config = json.loads(path.read_text())
    if config.get("format") != SUPPORTED_FORMAT:
        raise SystemExit(f"{path}: preprocessing format {config.get('format')!r}, this script reads {SUPPORTED_FORMAT}")
    return config


def encode(session: onnxruntime.InferenceSession, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the graph on exactly the inputs it declares (a missing one is an error naming it); return what the LM
    takes: ``image_embeds`` and, for a model with DeepStack (Qwen3-VL), every ``deepstack_<level>``."""
    names = [node.name for node in session.get_inputs()]
    missing = [name for name in names if name not in inputs]
    if missing:
        raise SystemExit(f"{MODEL_NAME} needs inputs this script does not compute: {missing}")
    levels = [node.name for node in session.get_outputs() if node.name.startswith("deepstack_")]
    outputs = ["image_embeds", *sorted(levels, key=lambda name: int(name.removeprefix("deepstack_")))]
    arrays = session.run(outputs, {name: inputs[name] for name in names})
    return {name: np.asarray(array, dtype=np.float32) for name, array in zip(outputs, arrays, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="append", required=True, type=Path, help="image file (repeatable)")
    parser.add_argument("--output-dir", required=True, type=Path, help="where embeddings and grid are written")
    parser.add_argument("--model-dir", type=Path, default=HERE, help="folder with vision.onnx and preprocess.json")
    parser.add_argument("--save-inputs", action="store_true", help="also write pixel_values.npy and onnx_inputs.npz")
    args = parser.parse_args(argv)

    config = load_config(args.model_dir / CONFIG_NAME)
    for path in args.image:
        if not path.is_file():
            parser.error(f"--image {path}: no such file")
    pixel_values, grid_thw = preprocess([load_rgb(path) for path in args.image], config)
    inputs = graph_inputs(pixel_values, grid_thw, config)
    session = onnxruntime.InferenceSession(str(args.model_dir / MODEL_NAME), providers=["CPUExecutionProvider"])
    features = encode(session, inputs)
    embeds = features["image_embeds"]

    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, array in features.items():
        np.save(args.output_dir / f"{name}.npy", array)
    merge = config["merge_size"]
    grid = {
        "images": [str(path) for path in args.image],
        "image_grid_thw": grid_thw.tolist(),
        "merge_size": merge,
        "tokens_per_image": (grid_thw.prod(axis=-1) // merge**2).tolist(),
        "deepstack": [f"{name}.npy" for name in features if name != "image_embeds"],
    }
    (args.output_dir / "grid.json").write_text(json.dumps(grid, indent=2) + "\n")
    if args.save_inputs:
        np.save(args.output_dir / "pixel_values.npy", pixel_values)
        np.savez(args.output_dir / "onnx_inputs.npz", **inputs)
    print(f"{len(args.image)} image(s), grid {grid_thw.tolist()}: embeddings {list(embeds.shape)} -> {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
