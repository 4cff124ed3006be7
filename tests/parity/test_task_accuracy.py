"""Task accuracy (issue #15): every candidate path answers an eval set's questions and must not lose more than its
``max_accuracy_drop`` against original; a planted fault that changes answers fails that key while the genuine artefact
passes. Default: the fixed subset ``easy-vqa[:200]`` (tests/parity/conftest.py); nightly, every test question:

    pytest tests/parity -k accuracy --vlparity-eval-set easy-vqa

The other fixture family is judged in tests/parity/test_fixture_families.py (with that module's session).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.parity.faults import CONTROLS, FAULTS, Bench, Fault, bench_settings
from vlparity.eval_sets import EvalSet
from vlparity.paths import REFERENCE_PATH
from vlparity.report.model import CheckResult
from vlparity.session import ParitySession

FAULT = next(fault for fault in FAULTS if fault.kind == "lm-mlp-sign-flip")
CONTROL = next(control for control in CONTROLS if control.path == FAULT.path)


def test_no_path_loses_task_accuracy(
    parity_session: ParitySession, candidate_path: str, accuracy_eval_set: EvalSet
) -> None:
    result = parity_session.check_accuracy(candidate_path, accuracy_eval_set)
    assert result.metrics["n"] == len(accuracy_eval_set)
    assert result.passed, "; ".join(result.reasons)


@pytest.fixture(scope="module")
def bench(parity_session: ParitySession, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    """The fault bench with the run's own token budget (eval answers must not be cut short)."""
    settings = bench_settings(parity_session.settings.model, parity_session.settings.cache_dir)
    settings = dataclasses.replace(settings, max_new_tokens=parity_session.settings.max_new_tokens)
    return Bench(settings, tmp_path_factory.mktemp("accuracy-faults"))


def _accuracy(fault: Fault, bench: Bench, eval_set: EvalSet) -> CheckResult:
    session = bench.session(fault.path)
    session.use_runner(fault.plant(bench, session.context))
    return session.check_accuracy(fault.path, eval_set)


def test_a_fault_that_changes_answers_fails_max_accuracy_drop(bench: Bench, accuracy_eval_set: EvalSet) -> None:
    """Robust to a retrained fixture: asserts the key that failed, not which answers changed."""
    result = _accuracy(FAULT, bench, accuracy_eval_set)
    assert result.metrics["reference_accuracy"] > 0, (
        f"{REFERENCE_PATH} answers no question of {accuracy_eval_set.spec} right: the fixture cannot show a drop"
    )
    assert not result.passed and result.metrics["lost"] > 0
    assert any("(max_accuracy_drop)" in reason for reason in result.reasons), result.reasons


def test_the_genuine_artefact_keeps_its_accuracy(bench: Bench, accuracy_eval_set: EvalSet) -> None:
    result = _accuracy(CONTROL, bench, accuracy_eval_set)
    assert result.passed and result.metrics["lost"] == 0, result.reasons


def test_a_path_that_cannot_take_its_image_tokens_answers_nothing(bench: Bench, accuracy_eval_set: EvalSet) -> None:
    """One image token too few per image: the LM cannot run, so every question is scored wrong (``unanswered``), not
    a crash."""
    result = _accuracy(next(fault for fault in FAULTS if fault.kind == "image-token-count"), bench, accuracy_eval_set)
    assert result.metrics["unanswered"] == len(accuracy_eval_set) and result.metrics["candidate_accuracy"] == 0
    assert not result.passed and "question(s) unanswered" in result.reasons[-1]
