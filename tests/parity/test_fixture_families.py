"""Every bundled fixture family (Qwen2.5-VL with windowed vision attention, Qwen2-VL without, Qwen3-VL with DeepStack)
passes every path.

The main gate already judges the family given by ``--model`` (the Qwen2.5-VL fixture by default) sample by sample;
this module runs every path over the other fixture families, so one ``pytest tests/parity`` covers all three.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.eval_sets import EvalSet
from vlparity.inputs import Sample
from vlparity.model_source import DEFAULT_MODEL, FIXTURE_FAMILIES, FIXTURES_DIR
from vlparity.pytest_plugin import settings_from_config
from vlparity.session import ParitySession


def families_besides_the_gates(config: pytest.Config) -> list[str]:
    """Fixture families the main gate does not judge in this run (all, when ``--model`` is another checkpoint)."""
    model = settings_from_config(config).model
    judged = Path(model if model is not None else DEFAULT_MODEL).expanduser().resolve()
    return [family for family in FIXTURE_FAMILIES if (FIXTURES_DIR / family).resolve() != judged]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family", families_besides_the_gates(metafunc.config), scope="module")


@pytest.fixture(scope="module")
def family_session(family: str, parity_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(parity_session.settings, model=str(FIXTURES_DIR / family)))


def test_every_path_matches_original_on_the_other_family(family_session: ParitySession) -> None:
    samples = [Sample((IMAGES[2],), FIRST_PROMPT), Sample((IMAGES[1], IMAGES[3]), FIRST_PROMPT)]
    report = family_session.run(samples)
    failures = [
        f"{c.path} {c.check} {c.sample_id}: {c.reasons}" for p in report.candidates for c in p.checks if not c.passed
    ]
    assert report.candidates and all(p.checks for p in report.candidates)
    assert not failures, "\n".join(failures)


def test_no_path_loses_task_accuracy_on_the_other_family(
    family_session: ParitySession, accuracy_eval_set: EvalSet
) -> None:
    """As tests/parity/test_task_accuracy.py, on the other fixture family (its session and paths are this module's)."""
    failures = [
        f"{name}: {'; '.join(result.reasons)}"
        for name in family_session.candidates
        if not (result := family_session.check_accuracy(name, accuracy_eval_set)).passed
    ]
    assert not failures, "\n".join(failures)
