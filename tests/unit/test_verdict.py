"""Verdict rules: each tolerance limit turns a comparison into a named failure reason."""

from __future__ import annotations

import dataclasses

import numpy as np

from vlparity.parity.tensors import compare_tensors
from vlparity.parity.tokens import compare_teacher_forced, compare_tokens
from vlparity.parity.tolerances import tolerance_for
from vlparity.parity.verdict import judge_tokens, judge_vision

EXACT = tolerance_for("split")
TOPK = dataclasses.replace(EXACT, tokens="topk", kl_max=1.0, same_top1_min=0.0, top_k=2)


def test_exact_profile_rejects_any_embedding_difference() -> None:
    reference = np.ones((4, 8), dtype=np.float32)
    candidate = reference.copy()
    candidate[2, 3] += np.float32(1e-6)
    verdict = judge_vision(compare_tensors(reference, candidate, EXACT.vision_atol, EXACT.vision_rtol), EXACT)
    assert not verdict.passed
    assert "max |Δ|" in verdict.reasons[0] and "(2, 3)" in verdict.reasons[0]


def test_nan_embedding_is_reported_as_non_finite() -> None:
    candidate = np.ones((2, 2))
    candidate[0, 0] = np.nan
    verdict = judge_vision(compare_tensors(np.ones((2, 2)), candidate, 1.0, 1.0), EXACT)
    assert not verdict.passed and "non-finite" in verdict.reasons[0]


def test_wrong_image_token_count_is_reported_as_shape() -> None:
    verdict = judge_vision(compare_tensors(np.ones((4, 2)), np.ones((3, 2)), 1.0, 1.0), EXACT)
    assert not verdict.passed and "image token count" in verdict.reasons[0]


def _token_verdict(candidate_runner_up: int, tolerance):
    reference_tokens, candidate_tokens = np.array([1, 3]), np.array([1, 4])
    ref_logits = np.zeros((2, 6))
    ref_logits[0, 1] = ref_logits[1, 3] = 5.0
    ref_logits[1, 4] = 4.0
    cand_logits = np.zeros((2, 6))
    cand_logits[0, 1] = cand_logits[1, 4] = 5.0
    cand_logits[1, candidate_runner_up] = 4.0
    tokens = compare_tokens(reference_tokens, candidate_tokens, ref_logits, cand_logits, top_k=tolerance.top_k)
    teacher_forced = compare_teacher_forced(ref_logits, cand_logits, reference_tokens)
    return judge_tokens(tokens, teacher_forced, tolerance)


def test_exact_rule_fails_any_token_difference() -> None:
    verdict = _token_verdict(candidate_runner_up=3, tolerance=EXACT)
    assert not verdict.passed and "tokens differ" in verdict.reasons[0]


def test_topk_rule_accepts_a_near_tie_and_rejects_a_far_token() -> None:
    assert _token_verdict(candidate_runner_up=3, tolerance=TOPK).passed
    far = _token_verdict(candidate_runner_up=0, tolerance=TOPK)
    assert not far.passed and "top-2" in far.reasons[0]
