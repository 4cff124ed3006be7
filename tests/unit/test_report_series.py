"""Plot series: the fixed-bin |Δ| histogram and the merged patch grid (pure functions in vlparity/parity/series.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vlparity.parity.series import LOG10_EDGES, error_histogram, merged_patch_grid


def test_each_difference_lands_in_its_half_decade_bin() -> None:
    reference = np.zeros(4)
    candidate = np.array([0.0, 2e-7, 5e-7, 0.3])
    histogram = error_histogram(reference, candidate)
    assert histogram is not None
    bins = {LOG10_EDGES[i]: count for i, count in enumerate(histogram.counts) if count}
    assert bins == {-7.0: 1, -6.5: 1, -1.0: 1}  # 2e-7 → [1e-7, 3.2e-7), 5e-7 → [3.2e-7, 1e-6), 0.3 → [0.1, 0.32)
    assert histogram.zero == 1


def test_out_of_range_and_non_finite_differences_have_their_own_counts() -> None:
    reference = np.array([0.0, 0.0, np.nan, 1.0])
    candidate = np.array([1e-12, 50.0, 0.0, np.inf])
    histogram = error_histogram(reference, candidate)
    assert histogram is not None
    assert (histogram.below, histogram.above, histogram.nonfinite, sum(histogram.counts)) == (1, 1, 2, 0)


def test_shapes_that_differ_have_no_histogram() -> None:
    assert error_histogram(np.zeros((2, 3)), np.zeros((3, 2))) is None


@given(arrays(np.float32, st.integers(1, 64), elements=st.floats(width=32)))
def test_every_element_is_counted_exactly_once(candidate: np.ndarray) -> None:
    histogram = error_histogram(np.zeros_like(candidate), candidate)
    assert histogram is not None and histogram.total == candidate.size


def test_merged_grid_is_the_patch_grid_divided_by_the_spatial_merge() -> None:
    assert merged_patch_grid((1, 18, 22), 2) == (9, 11)


def test_a_grid_the_merge_does_not_divide_is_an_error() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        merged_patch_grid((1, 17, 22), 2)
