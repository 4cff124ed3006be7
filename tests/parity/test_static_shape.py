"""``--static-shape`` (issue #18): the fixed-shape opset-17 ONNX encoder passes the gate against ``original`` at its
size, square and not, vision embeddings and generated tokens, one-image and two-image prompts."""

from __future__ import annotations

import dataclasses

import pytest

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.inputs import Sample
from vlparity.session import ParitySession
from vlparity.static_shape import StaticShape


@pytest.mark.parametrize("shape", [StaticShape(224, 224), StaticShape(336, 224)], ids=str)
def test_fixed_shape_onnx_path_matches_original(parity_session: ParitySession, shape: StaticShape) -> None:
    session = ParitySession(
        dataclasses.replace(parity_session.settings, paths=("original", "onnx"), static_shape=shape)
    )
    samples = [Sample((image,), FIRST_PROMPT) for image in (IMAGES[1], IMAGES[5], IMAGES[6])]
    report = session.run([*samples, Sample((IMAGES[0], IMAGES[3]), FIRST_PROMPT)])
    checks = report.paths["onnx"].checks
    failures = [f"{c.check} {c.sample_id}: {c.reasons}" for c in checks if not c.passed]
    assert {c.check for c in checks} == {"vision", "tokens"}
    assert not failures, "\n".join(failures)
    assert report.paths["onnx"].details["static_shape"] == str(shape)
