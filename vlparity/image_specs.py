"""``--image`` values → samples. A value is a file, a folder (every image in it, sorted), or a quoted glob pattern
(expanded here, so it works where no shell does); commas join several images into one prompt.

A folder or glob alone gives one sample per image; inside a comma group everything it expands to joins that one prompt.
A pattern that matches nothing or a folder without images is a usage error naming it: an empty run would "pass".
"""

from __future__ import annotations

import glob
from pathlib import Path

from vlparity.errors import UsageError
from vlparity.inputs import Sample, default_samples, fixture_prompts

GLOB_CHARACTERS = frozenset("*?[")
# What a folder contributes: the formats photos and screenshots come in (a stray .txt or .h5 is not an image).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def expand_part(part: str) -> list[Path]:
    """One comma-separated part of ``--image``: a folder's images, a glob's matches, or the path itself."""
    path = Path(part).expanduser()
    if path.is_dir():
        images = sorted(item for item in path.iterdir() if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UsageError(f"--image {part}: the folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return images
    if GLOB_CHARACTERS & set(part):
        matches = sorted(Path(match) for match in glob.glob(str(path), recursive=True) if Path(match).is_file())
        if not matches:
            raise UsageError(f"--image {part!r}: the pattern matches no file.")
        return matches
    return [path]


def samples_from_specs(specs: list[str], prompt: str | None) -> list[Sample]:
    """Samples for the ``--image`` values with ``prompt``; none given: the fixture images (and prompt)."""
    if not specs:
        samples = default_samples()
        return [Sample(sample.images, prompt) for sample in samples] if prompt else samples
    prompt = prompt or fixture_prompts()[0]
    samples = []
    for spec in specs:
        groups = [expand_part(part) for part in spec.split(",") if part]
        if len(groups) == 1:
            samples.extend(Sample((image,), prompt) for image in groups[0])
        else:
            samples.append(Sample(tuple(image for group in groups for image in group), prompt))
    return samples
