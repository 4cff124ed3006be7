"""``--image``: files, folders and quoted globs become samples; commas join images into one prompt; an empty
expansion is a usage error naming the pattern or folder (an empty run would otherwise pass)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vlparity.errors import UsageError
from vlparity.image_specs import samples_from_specs
from vlparity.inputs import fixture_prompts


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder with three images (written out of order), a text file and a sub-folder."""
    for name in ("b.png", "a.jpg", "c.webp"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "nested").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "nested" / "d.png")
    return tmp_path


def images_of(specs: list[str]) -> list[list[str]]:
    return [[path.name for path in sample.images] for sample in samples_from_specs(specs, "Describe.")]


def test_a_folder_gives_one_sample_per_image_sorted_skipping_other_files(images: Path) -> None:
    assert images_of([str(images)]) == [["a.jpg"], ["b.png"], ["c.webp"]]


def test_a_glob_is_expanded_sorted_even_without_a_shell(images: Path) -> None:
    assert images_of([str(images / "*.png")]) == [["b.png"]]
    assert images_of([str(images / "**" / "*.png")]) == [["b.png"], ["d.png"]]


def test_commas_join_files_folders_and_globs_into_one_prompt(images: Path) -> None:
    assert images_of([f"{images / 'c.webp'},{images / '*.png'}"]) == [["c.webp", "b.png"]]


def test_repeated_values_are_separate_samples_with_the_given_prompt(images: Path) -> None:
    samples = samples_from_specs([str(images / "a.jpg"), str(images / "b.png")], "Describe.")
    assert [sample.prompt for sample in samples] == ["Describe.", "Describe."] and len(samples) == 2


def test_a_plain_path_is_kept_for_validation_to_report(images: Path) -> None:
    assert images_of([str(images / "missing.png")]) == [["missing.png"]]


def test_no_images_means_the_fixture_images_with_the_fixture_prompt() -> None:
    samples = samples_from_specs([], None)
    assert len(samples) > 1 and {sample.prompt for sample in samples} == {fixture_prompts()[0]}


def test_a_pattern_that_matches_nothing_is_a_usage_error_naming_it(images: Path) -> None:
    pattern = str(images / "*.tiff")
    with pytest.raises(UsageError, match="the pattern matches no file") as error:
        samples_from_specs([pattern], None)
    assert pattern in str(error.value)


def test_a_folder_without_images_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(UsageError, match="the folder holds no image files") as error:
        samples_from_specs([str(tmp_path)], None)
    assert str(tmp_path) in str(error.value)
