"""Every candidate path's image embeddings match ``original``'s within that path's tolerance profile."""

from __future__ import annotations

import pytest

from tests.samples import VISION_SAMPLES, sample_ids
from vlparity.inputs import Sample
from vlparity.session import ParitySession


@pytest.mark.parametrize("sample", VISION_SAMPLES, ids=sample_ids(VISION_SAMPLES))
def test_vision_embeddings_match_original(parity_session: ParitySession, candidate_path: str, sample: Sample) -> None:
    results = parity_session.check_vision(candidate_path, sample)
    assert len([r for r in results if r.check == "vision"]) == len(sample.images)  # plus DeepStack levels (Qwen3-VL)
    failures = [f"{r.check} image {r.image_index}: {'; '.join(r.reasons)}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)
