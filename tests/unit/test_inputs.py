"""Image inputs: unusable files fail early with the file named (the bad-image cases are in test_bad_input.py);
samples have stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlparity.errors import InputFileError
from vlparity.inputs import Sample, default_samples, fixture_images, load_image


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_sample_validate_opens_every_image(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputFileError):
        Sample((fixture_images()[0], tmp_path / "empty.png"), "x").validate()


def test_default_samples_cover_every_fixture_image() -> None:
    samples = default_samples()
    assert [s.images[0] for s in samples] == fixture_images()
    assert len({s.sample_id for s in samples}) == len(samples)
