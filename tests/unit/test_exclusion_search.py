"""The bounded search behind ``--suggest-exclusions`` (vlparity.exclusion_search), on gates with a known answer, and
the ranking it searches over (``noise_growth``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlparity.exclusion_search import ExclusionSuggestion, Trial, shortest_passing_prefix
from vlparity.parity.tensor_table import build_table, noise_growth, tensor_error, weight_error


def _threshold_gate(threshold: int, calls: list[int]):
    def gate(count: int) -> tuple[bool, str]:
        calls.append(count)
        return count >= threshold, "" if count >= threshold else f"{count} < {threshold}"

    return gate


@given(st.integers(1, 400), st.data())
def test_the_search_finds_the_shortest_passing_prefix_within_its_bound(candidates: int, data: st.DataObject) -> None:
    threshold = data.draw(st.integers(1, candidates))
    calls: list[int] = []
    bound = 2 * math.ceil(math.log2(candidates)) + 2
    passing, trials = shortest_passing_prefix(candidates, _threshold_gate(threshold, calls), max_trials=bound)
    assert passing == threshold
    assert len(trials) == len(calls) <= bound


def test_no_prefix_passes_when_excluding_everything_still_fails() -> None:
    calls: list[int] = []
    passing, trials = shortest_passing_prefix(10, _threshold_gate(11, calls), max_trials=50)
    assert passing is None and calls == [1, 2, 4, 8, 10]
    suggestion = ExclusionSuggestion(None, (), 10, tuple(trials))
    assert "not a quantization error" in suggestion.lines()[0]


def test_the_trial_budget_is_never_exceeded_and_its_end_is_said() -> None:
    calls: list[int] = []
    passing, trials = shortest_passing_prefix(1000, _threshold_gate(700, calls), max_trials=3)
    assert passing is None and calls == [1, 2, 4]
    assert "raise --max-exclusion-trials" in ExclusionSuggestion(None, (), 1000, tuple(trials)).lines()[0]


def test_the_suggestion_keeps_the_runs_own_exclusions_and_says_how_many_it_adds() -> None:
    suggestion = ExclusionSuggestion(("node_a", "node_b", "node_c"), ("node_a",), 5, (Trial(2, True, ""),))
    lines = suggestion.lines()
    assert "keeping 2 more node(s)" in lines[0]
    assert lines[1] == "  --qdq-exclude node_a,node_b,node_c"


def _row(name: str, order: int, sqnr: float):
    reference = np.linspace(1.0, 2.0, 16)
    candidate = reference + 10 ** (-sqnr / 20) * np.linalg.norm(reference) / 4 * np.resize([1.0, -1.0], 16)
    return tensor_error(name, "vision.blocks.0", "block 0", order, reference, candidate, None)


def test_noise_growth_charges_a_node_for_what_it_adds_not_what_it_carries() -> None:
    table = build_table([_row("x", 0, 20.0), _row("y", 1, 10.0), _row("z", 2, 10.0)], [])
    growth = noise_growth(
        [("adds", ["x"], ["y"]), ("carries", ["y"], ["z"]), ("reads_input", ["pixels"], ["x"])], table
    )
    assert growth["adds"] > growth["reads_input"] > 0
    assert abs(growth["carries"]) < 1e-9


def test_noise_growth_charges_a_node_for_a_noisy_weight_it_reads() -> None:
    table = build_table(
        [_row("x", 0, 30.0), _row("y", 1, 30.0)], [weight_error("w", "block 0", np.ones(4), np.full(4, 1.1))]
    )
    growth = noise_growth([("linear", ["x", "w"], ["y"])], table)
    assert growth["linear"] == pytest.approx(10 ** (-20 / 10))
