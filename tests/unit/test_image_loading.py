"""Images are loaded as the user sees them (transformers' ``load_image`` conventions, and beyond where a plain
``convert("RGB")`` would show the model something else), by vlparity and by a bundle's standalone script alike. Each
image is built here with Pillow."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vlparity.bundle
from vlparity.inputs import TRANSPARENCY_BACKGROUND, load_image

EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # the stored pixels must be turned 90° clockwise to be upright
BLUE, GREEN = (0, 0, 255), (0, 255, 0)


def rotated_by_exif(folder: Path) -> Path:
    """40x20 stored, 20x40 upright."""
    path = folder / "phone.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    Image.new("RGB", (40, 20), "red").save(path, exif=exif)
    return path


def half_transparent(folder: Path) -> Path:
    """Red stored under every pixel, opaque on the left half, fully transparent on the right."""
    path = folder / "logo.png"
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 0] = 255
    pixels[:, :4, 3] = 255
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def sixteen_bit_grey(folder: Path) -> Path:
    """Four 4x4 squares at 16-bit levels 0, 64·257, 128·257 and 65535."""
    path = folder / "scan.png"
    levels = np.array([[0, 257 * 64], [257 * 128, 65535]], np.uint16)
    Image.fromarray(np.kron(levels, np.ones((4, 4), np.uint16))).save(path)
    assert Image.open(path).mode == "I;16"
    return path


def animated(folder: Path) -> Path:
    """A blue frame, then a green one."""
    path = folder / "clip.gif"
    Image.new("RGB", (8, 8), BLUE).save(path, save_all=True, append_images=[Image.new("RGB", (8, 8), GREEN)])
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    assert load_image(rotated_by_exif(tmp_path)).size == (20, 40)


def test_transparent_pixels_show_the_documented_background_not_the_hidden_rgb(tmp_path: Path) -> None:
    loaded = np.asarray(load_image(half_transparent(tmp_path)))
    assert (loaded[:, :4] == (255, 0, 0)).all()
    assert (loaded[:, 4:] == TRANSPARENCY_BACKGROUND).all()


def test_sixteen_bit_greyscale_is_scaled_to_eight_bit(tmp_path: Path) -> None:
    loaded = np.asarray(load_image(sixteen_bit_grey(tmp_path)))
    assert sorted(np.unique(loaded).tolist()) == [0, 64, 128, 255]


def test_an_animated_image_gives_its_first_frame_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = animated(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vlparity.inputs"):
        loaded = np.asarray(load_image(path))
    assert (loaded == BLUE).all()
    assert f"--image {path}: animated (2 frames); only its first frame is judged" in caplog.text


@pytest.mark.parametrize("build", [rotated_by_exif, half_transparent, sixteen_bit_grey, animated])
def test_a_bundles_script_reads_the_same_pixels_as_vlparity(build: Callable[[Path], Path], tmp_path: Path) -> None:
    script = Path(vlparity.bundle.__file__).parent / "templates" / "vision_inference.py"
    spec = importlib.util.spec_from_file_location("bundle_vision_inference", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = build(tmp_path)
    np.testing.assert_array_equal(module.load_rgb(path), np.asarray(load_image(path)))
