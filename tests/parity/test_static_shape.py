"""``--static-shape`` (issue #18): the fixed-shape opset-17 ONNX encoder passes the gate against ``original`` at its
size, square and not, vision embeddings (and DeepStack levels, Qwen3-VL) and generated tokens, one-image and two-image
prompts. Sizes are counted in the model's merged-patch unit (28 px for Qwen2-VL/Qwen2.5-VL, 32 px for Qwen3-VL)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.inputs import Sample
from vlparity.session import ParitySession
from vlparity.static_shape import StaticShape


@pytest.mark.parametrize("units", [(8, 8), (12, 8)], ids=["square", "landscape"])
def test_fixed_shape_onnx_path_matches_original(parity_session: ParitySession, units: tuple[int, int]) -> None:
    vision = parity_session.context.source.config["vision_config"]
    unit = vision["patch_size"] * vision["spatial_merge_size"]
    shape = StaticShape(units[0] * unit, units[1] * unit)
    session = ParitySession(
        dataclasses.replace(parity_session.settings, paths=("original", "onnx"), static_shape=shape)
    )
    samples = [Sample((image,), FIRST_PROMPT) for image in (IMAGES[1], IMAGES[5], IMAGES[6])]
    report = session.run([*samples, Sample((IMAGES[0], IMAGES[3]), FIRST_PROMPT)])
    checks = report.paths["onnx"].checks
    failures = [f"{c.check} {c.sample_id}: {c.reasons}" for c in checks if not c.passed]
    levels = vision.get("deepstack_visual_indexes", [])
    assert {c.check for c in checks} == {"vision", "tokens"} | ({"deepstack"} if levels else set())
    assert not failures, "\n".join(failures)
    assert report.paths["onnx"].details["static_shape"] == str(shape)
