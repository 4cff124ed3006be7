"""Both bundled fixture families (Qwen2.5-VL with windowed vision attention, Qwen2-VL without) pass every path."""

from __future__ import annotations

import dataclasses

import pytest

from tests.parity.samples import FIRST_PROMPT, IMAGES
from vlparity.inputs import Sample
from vlparity.model_source import FIXTURES_DIR
from vlparity.session import ParitySession

FAMILIES = ["qwen2_5_vl", "qwen2_vl"]


@pytest.fixture(scope="module", params=FAMILIES)
def family_session(request: pytest.FixtureRequest, parity_session: ParitySession) -> ParitySession:
    settings = dataclasses.replace(parity_session.settings, model=str(FIXTURES_DIR / request.param))
    return ParitySession(settings)


def test_every_path_matches_original_on_both_families(family_session: ParitySession) -> None:
    samples = [Sample((IMAGES[2],), FIRST_PROMPT), Sample((IMAGES[1], IMAGES[3]), FIRST_PROMPT)]
    report = family_session.run(samples)
    failures = [
        f"{c.path} {c.check} {c.sample_id}: {c.reasons}" for p in report.candidates for c in p.checks if not c.passed
    ]
    assert report.candidates and all(p.checks for p in report.candidates)
    assert not failures, "\n".join(failures)
