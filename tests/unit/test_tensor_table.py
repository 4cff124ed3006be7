"""The per-tensor error table (vlparity.parity.tensor_table) and its verdict: SQNR as ORT's qdq_loss_debug defines it,
where each tensor sits in the tower, and which tensor the verdict names."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vlparity.parity.tensor_table import build_table, sqnr_db, tensor_error, weight_error
from vlparity.parity.tolerances import tolerance_for
from vlparity.parity.verdict import judge_tensor_table
from vlparity.runtime.activations import location

finite_arrays = arrays(
    np.float32, st.integers(2, 64), elements=st.floats(-100, 100, width=32).filter(lambda x: abs(x) > 1e-3)
)


@given(finite_arrays, st.floats(0.05, 8.0).filter(lambda k: abs(k - 1) > 1e-3))
def test_a_scaled_tensor_reads_20_log10_of_one_over_the_scale_error(values: np.ndarray, factor: float) -> None:
    assert sqnr_db(values, values * np.float64(factor)) == pytest.approx(-20 * math.log10(abs(factor - 1)), abs=1e-6)


def test_a_tensor_scaled_by_four_reads_minus_9_5_db() -> None:
    values = np.linspace(-1, 1, 100)
    assert sqnr_db(values, 4 * values) == pytest.approx(-9.54, abs=0.01)


@given(finite_arrays)
def test_identical_tensors_are_infinitely_close(values: np.ndarray) -> None:
    assert sqnr_db(values, values.copy()) == math.inf


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_the_reference_lacks_reads_minus_infinity(bad: float) -> None:
    reference = np.ones(8, np.float32)
    candidate = reference.copy()
    candidate[3] = bad
    assert sqnr_db(reference, candidate) == -math.inf


def test_nan_in_both_never_counts_as_agreement() -> None:
    values = np.array([1.0, np.nan, 2.0])
    assert sqnr_db(values, values.copy()) == -math.inf


def test_an_attention_masks_shared_minus_infinity_is_left_out() -> None:
    reference = np.array([0.0, -np.inf, 1.0, 2.0])
    candidate = np.array([0.0, -np.inf, 1.0, 2.5])
    assert sqnr_db(reference, candidate) == pytest.approx(20 * math.log10(math.sqrt(5) / 0.5))


def test_shapes_that_differ_read_minus_infinity() -> None:
    assert sqnr_db(np.ones((2, 3)), np.ones((3, 2))) == -math.inf


def test_noise_on_a_zero_tensor_reads_minus_infinity() -> None:
    assert sqnr_db(np.zeros(4), np.full(4, 1e-6)) == -math.inf


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("vision.blocks.12.mlp.fc2", "block 12"),
        ("attentions.3.qkv.weight", "block 3"),
        ("vision.blocks.0.attn.proj.bias", "block 0"),
        ("block_5", "block 5"),
        ("vision.merger.mlp.0", "merger"),
        ("vision.patch_embed.proj.weight", "patch_embed"),
        ("select_3", "tower"),
        ("vision.blocks_extra.1", "tower"),
    ],
)
def test_each_tensor_is_placed_by_its_module_scope(scope: str, expected: str) -> None:
    assert location(scope) == expected


def _row(name: str, where: str, order: int, sqnr: float):
    reference = np.linspace(1.0, 2.0, 16)
    noise = 10 ** (-sqnr / 20) * np.linalg.norm(reference) / np.sqrt(16)
    candidate = reference + noise * np.resize([1.0, -1.0], 16)
    return tensor_error(name, f"vision.{where}", where, order, reference, candidate, None)


def test_a_tensor_seen_in_several_runs_keeps_its_worst_value() -> None:
    table = build_table([_row("a", "block 0", 0, 30.0), _row("a", "block 0", 0, 12.0), _row("b", "block 1", 1, 20)], [])
    assert [(row.name, round(row.sqnr_db, 6)) for row in table.tensors] == [("a", 12.0), ("b", 20.0)]


def test_blocks_come_in_tower_order_with_their_worst_tensor_and_weight() -> None:
    rows = [_row("m", "merger", 9, 25.0), _row("x", "block 10", 5, 14.0), _row("y", "block 2", 2, 11.0)]
    rows += [_row("z", "block 2", 3, 19.0), _row("p", "patch_embed", 0, 40.0)]
    weights = [weight_error("w2", "block 2", np.ones(4), np.full(4, 1.01))]
    blocks = build_table(rows, weights).blocks()
    assert [block.location for block in blocks] == ["patch_embed", "block 2", "block 10", "merger"]
    block_2 = blocks[1]
    assert (block_2.tensors, block_2.worst_tensor, block_2.worst_weight) == (2, "y", "w2")
    assert block_2.min_sqnr_db == pytest.approx(11.0)
    assert block_2.min_weight_sqnr_db == pytest.approx(40.0)


QDQ = tolerance_for("onnx-qdq")


def test_a_table_above_both_floors_passes() -> None:
    table = build_table([_row("a", "block 0", 0, 12.0)], [weight_error("w", "block 0", np.ones(4), np.full(4, 1.001))])
    assert judge_tensor_table(table, QDQ).passed


def test_the_verdict_names_the_first_tensor_under_the_floor_in_graph_order_and_its_block() -> None:
    rows = [_row("late", "block 3", 30, -12.0), _row("early", "block 2", 20, -3.0), _row("fine", "block 1", 10, 9.0)]
    verdict = judge_tensor_table(build_table(rows, []), QDQ)
    assert not verdict.passed
    (reason,) = verdict.reasons
    assert "2 of 3 tensors under 0 dB" in reason and "(tensor_min_sqnr_db)" in reason
    assert "the first is early in block 2 (vision.block 2): -3.0 dB" in reason
    assert reason.endswith("locations: block 2, block 3")


def test_a_weight_under_its_floor_is_named_with_its_block() -> None:
    weights = [weight_error("vision.blocks.2.mlp.fc2.weight", "block 2", np.ones(4), np.full(4, 4.0))]
    verdict = judge_tensor_table(build_table([_row("a", "block 0", 0, 12.0)], weights), QDQ)
    (reason,) = verdict.reasons
    assert "(weight_min_sqnr_db)" in reason and "vision.blocks.2.mlp.fc2.weight in block 2: -9.5 dB" in reason


def test_a_non_finite_tensor_always_fails_even_with_the_loosest_floor() -> None:
    reference = np.ones(4)
    row = tensor_error("t", "vision.blocks.0", "block 0", 0, reference, np.array([1, np.nan, 1, 1]), None)
    loosest = dataclasses.replace(QDQ, tensor_min_sqnr_db=-1e308)
    assert not judge_tensor_table(build_table([row], []), loosest).passed


def test_paths_without_a_float_twin_never_judge_the_table() -> None:
    onnx = tolerance_for("onnx")
    assert (onnx.tensor_min_sqnr_db, onnx.weight_min_sqnr_db) == (-math.inf, -math.inf)


def test_the_rounding_of_a_tensor_is_measured_before_against_after() -> None:
    reference = np.linspace(1.0, 2.0, 8)
    row = tensor_error("t", "vision.blocks.0", "block 0", 0, reference, reference * 1.01, reference * 1.02)
    assert row.rounding_sqnr_db == pytest.approx(sqnr_db(reference * 1.02, reference * 1.01))
    assert row.sqnr_db == pytest.approx(40.0)
