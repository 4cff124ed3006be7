"""Image inputs: unusable files fail early with the file named; samples have stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vlparity.errors import InputFileError
from vlparity.inputs import Sample, default_samples, fixture_images, load_image


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_zero_byte_image(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        load_image(tmp_path / "empty.png")


def test_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputFileError, match=r"text\.png: not a readable image"):
        load_image(tmp_path / "text.png")


def test_one_pixel_image(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(InputFileError, match="1x1 px is too small"):
        load_image(tmp_path / "dot.png")


def test_sample_validate_opens_every_image(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputFileError):
        Sample((fixture_images()[0], tmp_path / "empty.png"), "x").validate()


def test_default_samples_cover_every_fixture_image() -> None:
    samples = default_samples()
    assert [s.images[0] for s in samples] == fixture_images()
    assert len({s.sample_id for s in samples}) == len(samples)
