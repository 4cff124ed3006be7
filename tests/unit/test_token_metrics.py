"""compare_tokens and compare_teacher_forced: divergence, vLLM's top-k rule, KL, same-top-1 and Δp."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vlparity.parity.tokens import compare_teacher_forced, compare_tokens


def one_hot_logits(tokens: list[int], vocab: int = 6, runner_up: int | None = None) -> np.ndarray:
    logits = np.zeros((len(tokens), vocab))
    for step, token in enumerate(tokens):
        logits[step, token] = 5.0
        if runner_up is not None:
            logits[step, runner_up] = 4.0
    return logits


def test_identical_sequences_are_exact() -> None:
    result = compare_tokens(
        np.array([1, 2, 3]), np.array([1, 2, 3]), one_hot_logits([1, 2, 3]), one_hot_logits([1, 2, 3])
    )
    assert result.exact and result.first_divergence is None and result.match_rate == 1.0


def test_first_divergence_and_match_rate() -> None:
    result = compare_tokens(
        np.array([1, 2, 3, 4]), np.array([1, 2, 5, 4]), one_hot_logits([1, 2, 3, 4]), one_hot_logits([1, 2, 5, 4])
    )
    assert not result.exact
    assert result.first_divergence == 2
    assert result.match_rate == 0.75
    assert (result.reference_token, result.candidate_token) == (3, 5)


def test_top_k_rule_at_first_divergence() -> None:
    reference, candidate = [1, 3], [1, 5]
    near_tie = compare_tokens(
        np.array(reference), np.array(candidate), one_hot_logits(reference, runner_up=5),
        one_hot_logits(candidate, runner_up=3), top_k=2,
    )  # fmt: skip
    assert near_tie.reference_in_candidate_topk and near_tie.candidate_in_reference_topk
    far = compare_tokens(
        np.array(reference), np.array(candidate), one_hot_logits(reference, runner_up=0),
        one_hot_logits(candidate, runner_up=0), top_k=2,
    )  # fmt: skip
    assert far.reference_in_candidate_topk is False and far.candidate_in_reference_topk is False


def test_length_difference_counts_as_divergence() -> None:
    result = compare_tokens(np.array([1, 2]), np.array([1, 2, 3]), one_hot_logits([1, 2]), one_hot_logits([1, 2, 3]))
    assert result.first_divergence == 2 and not result.exact
    assert result.match_rate == pytest.approx(2 / 3)


def test_kl_hand_computed_on_two_tokens() -> None:
    # p = softmax([0, 0]) = (.5, .5); q = softmax([log 3, 0]) = (.75, .25)
    reference = np.array([[0.0, 0.0]])
    candidate = np.array([[math.log(3.0), 0.0]])
    result = compare_teacher_forced(reference, candidate, np.array([1]))
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert result.kl_mean == pytest.approx(expected)
    assert result.kl_max == pytest.approx(expected)
    assert result.delta_p_mean == pytest.approx(0.25 - 0.5)
    assert result.same_top1_rate == 1.0  # argmax of the tie (index 0) equals the candidate's argmax


def test_same_top1_rate_counts_agreeing_steps() -> None:
    reference = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    candidate = np.array([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    result = compare_teacher_forced(reference, candidate, np.array([0, 1, 0, 1]))
    assert result.same_top1_rate == 0.75
    assert result.same_top1_stderr == pytest.approx(math.sqrt(0.75 * 0.25 / 3))


def test_non_finite_logits_are_not_finite() -> None:
    reference = np.zeros((2, 3))
    candidate = reference.copy()
    candidate[1, 1] = np.nan
    result = compare_teacher_forced(reference, candidate, np.array([0, 1]))
    assert not result.finite
    assert math.isnan(result.kl_max)


logit_rows = arrays(
    np.float64, st.tuples(st.integers(1, 5), st.integers(2, 9)), elements=st.floats(-30, 30, allow_nan=False)
)


@given(logit_rows)
def test_identity_gives_zero_kl_and_full_agreement(logits: np.ndarray) -> None:
    tokens = logits.argmax(axis=-1)
    result = compare_teacher_forced(logits, logits.copy(), tokens)
    assert result.kl_max == 0.0 and result.same_top1_rate == 1.0 and result.delta_p_max_abs == 0.0


@given(logit_rows, logit_rows)
def test_kl_is_never_negative(reference: np.ndarray, candidate: np.ndarray) -> None:
    candidate = np.resize(candidate, reference.shape)
    result = compare_teacher_forced(reference, candidate, reference.argmax(axis=-1))
    assert result.kl_mean >= 0.0 and result.kl_max >= result.kl_p99 >= 0.0


def test_ambiguous_reference_steps_are_reported_but_not_gated() -> None:
    # step 0: the reference is sure (p≈0.99) and the candidate agrees; step 1: the reference hesitates (0.73/0.27)
    # and the candidate prefers the other token
    reference = np.array([[5.0, 0.0, 0.0], [1.0, 0.0, -9.0]])
    candidate = np.array([[5.0, 0.0, 0.0], [-1.0, 0.9, -9.0]])
    result = compare_teacher_forced(reference, candidate, np.array([0, 0]), settled_p=0.9)
    assert result.ambiguous_steps == 1
    assert result.same_top1_rate == 0.5 and result.settled_same_top1_rate == 1.0
    assert result.kl_max > 0.3 and result.settled_kl_max < 1e-9
    everything = compare_teacher_forced(reference, candidate, np.array([0, 0]))
    assert everything.ambiguous_steps == 0 and everything.settled_kl_max == everything.kl_max
