"""Specificity: benign inputs never raise a false alarm. Hypothesis draws image sizes and aspect ratios, pixel content
from a seed (solid, noise, gradient), fixture or random short prompts and one or two images per prompt; ``split`` and
``onnx`` are judged against ``original`` with the real verdict (vision and tokens), and every case must pass.

The default ``ci`` profile runs a bounded, derandomized subset; ``--hypothesis-profile=nightly`` runs 500 random cases
(see docs/tolerances.md, "Specificity").
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings

from tests.strategies import Case, cases
from vlparity.paths import REFERENCE_PATH
from vlparity.session import ParitySession

JUDGED = ("split", "onnx")
CI_CASES = 6  # about 5 s each on two CPU cores: the CI subset stays under a minute


def budget(ci_cases: int) -> int:
    """``ci_cases`` under the ``ci`` profile; any other profile's own count (nightly: 500)."""
    return ci_cases if settings.get_current_profile_name() == "ci" else settings.default.max_examples


@pytest.fixture(scope="module")
def loaded(parity_session: ParitySession) -> ParitySession:
    """original, split and onnx loaded once; each case is judged by a fresh session over these runners."""
    session = ParitySession(dataclasses.replace(parity_session.settings, paths=(REFERENCE_PATH, *JUDGED)))
    for name in (REFERENCE_PATH, *JUDGED):
        session.runner(name)
    return session


def judged_afresh(loaded: ParitySession) -> ParitySession:
    """A session that shares the loaded models but none of the results (nightly runs would pile them up)."""
    session = ParitySession(loaded.settings)
    for name in (REFERENCE_PATH, *JUDGED):
        session.use_runner(loaded.runner(name))
    return session


@settings(max_examples=budget(CI_CASES))
@given(case=cases)
def test_benign_inputs_pass_split_and_onnx(loaded: ParitySession, case: Case) -> None:
    session = judged_afresh(loaded)
    with tempfile.TemporaryDirectory() as folder:  # 500 nightly cases of up to two 700 px PNGs: not kept
        sample = case.sample(Path(folder))
        results = [
            result
            for name in JUDGED
            for result in (*session.check_vision(name, sample), session.check_tokens(name, sample))
        ]
    assert [(r.path, r.check, r.image_index, r.reasons) for r in results if not r.passed] == []
