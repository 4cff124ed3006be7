"""Every candidate path's greedy tokens and teacher-forced distributions match ``original``'s."""

from __future__ import annotations

import pytest

from tests.samples import TOKEN_SAMPLES, sample_ids
from vlparity.inputs import Sample
from vlparity.session import ParitySession


@pytest.mark.parametrize("sample", TOKEN_SAMPLES, ids=sample_ids(TOKEN_SAMPLES))
def test_generated_tokens_match_original(parity_session: ParitySession, candidate_path: str, sample: Sample) -> None:
    result = parity_session.check_tokens(candidate_path, sample)
    assert result.metrics["reference_length"] > 0, "the reference generated nothing; the check would be vacuous"
    assert result.passed, "; ".join(result.reasons)
