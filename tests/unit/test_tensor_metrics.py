"""compare_tensors: hand-computed values, Polygraphy's atol/rtol rule, NaN/Inf handling, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vlparity.parity.tensors import compare_tensors

finite_matrices = arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 8)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, width=32),
)


def test_hand_computed_errors_and_worst_element() -> None:
    reference = np.array([[1.0, 2.0], [3.0, 4.0]])
    candidate = np.array([[1.0, 2.5], [3.0, 3.0]])
    result = compare_tensors(reference, candidate, atol=0.0, rtol=0.0)
    assert result.max_abs_err == 1.0
    assert result.mean_abs_err == pytest.approx(0.375)
    assert result.rel_l2 == pytest.approx(math.sqrt(1.25) / math.sqrt(30))
    assert result.worst_index == (1, 1)
    assert (result.worst_reference, result.worst_candidate) == (4.0, 3.0)
    assert result.failing_elements == 2
    assert not result.allclose


def test_per_token_cosine_is_per_row() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidate = np.array([[1.0, 0.0], [1.0, 0.0]])
    result = compare_tensors(reference, candidate, atol=1.0, rtol=0.0)
    assert result.token_cosines == pytest.approx((1.0, 0.0))
    assert result.min_token_cosine == pytest.approx(0.0)
    assert result.cosine == pytest.approx(0.5)


def test_element_fails_only_when_beyond_both_atol_and_rtol() -> None:
    reference = np.array([100.0, 1.0])
    candidate = np.array([101.0, 1.5])
    # |Δ| = 1 is beyond atol 0.1 but within rtol 2 % of 100; |Δ| = 0.5 is beyond both
    result = compare_tensors(reference, candidate, atol=0.1, rtol=0.02)
    assert result.failing_elements == 1
    assert not result.allclose
    assert result.min_passing_atol == pytest.approx(0.5)
    assert compare_tensors(reference, candidate, atol=result.min_passing_atol, rtol=0.02).allclose


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["reference", "candidate"])
def test_non_finite_values_never_pass(bad: float, side: str) -> None:
    clean = np.ones((3, 4))
    dirty = clean.copy()
    dirty[1, 2] = bad
    reference, candidate = (dirty, clean) if side == "reference" else (clean, dirty)
    result = compare_tensors(reference, candidate, atol=np.inf, rtol=np.inf)
    assert not result.allclose
    assert result.nonfinite_reference + result.nonfinite_candidate == 1
    assert result.worst_index == (1, 2)


def test_nan_in_both_sides_at_the_same_place_still_fails() -> None:
    both = np.array([1.0, np.nan])
    assert not compare_tensors(both, both.copy(), atol=1.0, rtol=1.0).allclose


def test_shape_mismatch_cannot_pass() -> None:
    result = compare_tensors(np.zeros((4, 8)), np.zeros((5, 8)), atol=1.0, rtol=1.0)
    assert not result.shapes_match
    assert not result.allclose
    assert result.max_abs_err == math.inf


@given(finite_matrices)
def test_identity_has_zero_error_and_unit_cosine(matrix: np.ndarray) -> None:
    result = compare_tensors(matrix, matrix.copy(), atol=0.0, rtol=0.0)
    assert result.allclose
    assert result.max_abs_err == 0.0 and result.mean_abs_err == 0.0 and result.rel_l2 == 0.0
    assert result.min_passing_atol == 0.0
    assert result.min_token_cosine == pytest.approx(1.0, abs=1e-9)


@given(finite_matrices, finite_matrices)
def test_abs_error_and_cosine_are_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        b = np.resize(b, a.shape)
    forward, backward = compare_tensors(a, b, 0.0, 0.0), compare_tensors(b, a, 0.0, 0.0)
    assert forward.max_abs_err == backward.max_abs_err
    assert forward.mean_abs_err == pytest.approx(backward.mean_abs_err)
    assert forward.cosine == pytest.approx(backward.cosine, abs=1e-12)
    assert forward.token_cosines == pytest.approx(backward.token_cosines, abs=1e-12)


@given(finite_matrices, st.floats(1e-6, 1.0))
def test_min_passing_atol_is_the_smallest_atol_that_passes(matrix: np.ndarray, scale: float) -> None:
    noisy = matrix + scale * np.sin(np.arange(matrix.size, dtype=np.float32)).reshape(matrix.shape)
    needed = compare_tensors(matrix, noisy, atol=0.0, rtol=0.0).min_passing_atol
    assert compare_tensors(matrix, noisy, atol=needed, rtol=0.0).allclose
    if needed > 0:
        assert not compare_tensors(matrix, noisy, atol=needed * 0.999, rtol=0.0).allclose
