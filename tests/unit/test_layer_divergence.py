"""Locating an LM divergence from per-layer hidden states: first state beyond a threshold, and largest error growth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlparity.parity.layers import compare_layers, noise_threshold

REFERENCE = [np.full((3, 4), float(value)) for value in (1, 2, 3, 4)]  # embeddings, layer 0, layer 1, logits


def perturbed(errors: list[float]) -> list[np.ndarray]:
    """Reference states scaled by 1 + error: each state's relative L2 error is exactly ``error``."""
    return [state * (1 + error) for state, error in zip(REFERENCE, errors, strict=True)]


def test_identical_states_have_no_divergence() -> None:
    layers = compare_layers(REFERENCE, REFERENCE, max_rel_l2=0.0)
    assert layers.rel_l2 == (0.0, 0.0, 0.0, 0.0)
    assert layers.first_diverging is None


def test_first_diverging_is_the_first_state_beyond_the_threshold() -> None:
    layers = compare_layers(REFERENCE, perturbed([0.0, 1e-7, 1e-3, 1e-2]), max_rel_l2=1e-6)
    assert layers.first_diverging == 2
    assert layers.rel_l2[2] == pytest.approx(1e-3)


def test_a_nan_state_diverges_and_is_reported_as_nan() -> None:
    candidate = perturbed([0.0, 0.0, 0.0, 0.0])
    candidate[1][0, 0] = np.nan
    layers = compare_layers(REFERENCE, candidate, max_rel_l2=math.inf)
    assert layers.first_diverging == 1
    assert math.isnan(layers.rel_l2[1])


def test_largest_growth_names_the_layer_that_adds_most_error_over_a_noisy_floor() -> None:
    """Quantized LMs carry error everywhere: the faulty layer is where it jumps, not where it first appears."""
    layers = compare_layers(REFERENCE, perturbed([1e-4, 0.03, 0.3, 0.25]), max_rel_l2=1e-6)
    assert layers.first_diverging == 0
    assert layers.largest_growth == 2


def test_largest_growth_after_a_nan_is_the_nan_state() -> None:
    candidate = perturbed([0.0, 0.5, 0.0, 0.0])
    candidate[2][0, 0] = np.nan
    candidate[3][0, 0] = np.nan
    assert compare_layers(REFERENCE, candidate, max_rel_l2=1e-6).largest_growth == 2


def test_state_lists_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 candidate states, reference has 4"):
        compare_layers(REFERENCE, REFERENCE[:3], max_rel_l2=0.0)


def test_the_threshold_is_zero_when_the_reference_reproduces_itself_exactly() -> None:
    assert noise_threshold(REFERENCE, [state.copy() for state in REFERENCE]) == 0.0


def test_the_threshold_is_a_multiple_of_the_references_own_run_to_run_error() -> None:
    rerun = perturbed([0.0, 1e-9, 2e-9, 0.0])
    assert noise_threshold(REFERENCE, rerun, factor=10) == pytest.approx(2e-8)


def test_a_perturbation_under_1e_6_is_located_when_the_reference_is_deterministic() -> None:
    """A fixed 1e-6 threshold cleared such a layer and blamed the image embeddings instead."""
    threshold = noise_threshold(REFERENCE, REFERENCE)
    assert compare_layers(REFERENCE, perturbed([0.0, 0.0, 1e-7, 1e-7]), threshold).first_diverging == 2
