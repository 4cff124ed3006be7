"""Samples the parity suite runs: every fixture image alone, a two-image prompt, and every fixture prompt."""

from __future__ import annotations

from vlparity.inputs import Sample, fixture_images, fixture_prompts

IMAGES = fixture_images()
PROMPTS = fixture_prompts()
FIRST_PROMPT = PROMPTS[0]

VISION_SAMPLES = [Sample((image,), FIRST_PROMPT) for image in IMAGES] + [
    Sample((IMAGES[0], IMAGES[-1]), "Compare the two images.")
]
TOKEN_SAMPLES = [Sample((image,), prompt) for image in IMAGES for prompt in PROMPTS] + [
    Sample((IMAGES[0], IMAGES[-1]), FIRST_PROMPT),
    Sample((), "What is in the image?"),
]


def sample_ids(samples: list[Sample]) -> list[str]:
    return [sample.sample_id for sample in samples]
