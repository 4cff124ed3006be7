"""The noise-floor report's arithmetic: worst values over samples and the margin each tolerance keeps above them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from vlparity import noise_floor
from vlparity.noise_floor import Outputs, format_margin, format_row, margin, margins, worst_of
from vlparity.parity.tolerances import tolerance_for
from vlparity.paths import Generation

LIMITS = {"max_abs_err": 1e-4, "min_cosine": 0.999, "rel_l2": 1e-5, "kl_max": 1e-9, "same_top1": 0.9, "kernel": 0.02}


def outputs(embedding: np.ndarray, logits: np.ndarray) -> Outputs:
    tokens = logits.argmax(-1)
    return Outputs([embedding], Generation(tokens=tokens, logits=logits), logits)


def test_margin_is_limit_over_floor() -> None:
    assert margin("max_abs_err", 1e-5, 1e-4) == pytest.approx(10)


def test_margin_of_a_metric_where_one_is_perfect_counts_the_distance_from_one() -> None:
    assert margin("min_cosine", 0.9999, 0.999) == pytest.approx(10)
    assert margin("same_top1", 0.95, 0.9) == pytest.approx(2)


def test_noise_above_the_limit_has_a_margin_below_one() -> None:
    assert margin("kl_max", 2e-9, 1e-9) == pytest.approx(0.5)


def test_zero_noise_under_a_non_zero_limit_has_infinite_margin() -> None:
    assert margin("rel_l2", 0.0, 1e-5) == math.inf


def test_zero_noise_under_a_zero_limit_reads_exact() -> None:
    assert format_margin(margin("max_abs_err", 0.0, 0.0)) == "exact"
    assert format_margin(margin("min_cosine", 1.0, 1.0)) == "exact"


def test_no_limit_has_infinite_margin() -> None:
    assert margin("max_abs_err", 0.03, math.inf) == math.inf


def test_nan_noise_has_no_margin() -> None:
    assert margin("max_abs_err", math.nan, 1e-4) == 0.0


def test_margins_cover_every_limit() -> None:
    worst = {"max_abs_err": 2e-5, "min_cosine": 1.0, "rel_l2": 0.0, "kl_max": 1e-12, "same_top1": 1.0, "kernel": 0.0}
    expected = {"max_abs_err": 5, "kl_max": 1000, "min_cosine": math.inf, "rel_l2": math.inf, "same_top1": math.inf}
    assert margins(worst, LIMITS) == pytest.approx({**expected, "kernel": math.inf})


def test_worst_of_takes_the_worst_sample_and_counts_exact_token_samples() -> None:
    logits = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 0.1]])
    embedding = np.ones((2, 4))
    near, far = embedding + 1e-6, embedding + 1e-3
    rolled = logits[:, [1, 2, 0]]  # every argmax moves
    pairs = [
        (outputs(embedding, logits), outputs(near, logits)),
        (outputs(embedding, logits), outputs(far, rolled)),
    ]
    worst = worst_of(pairs)
    assert worst["max_abs_err"] == pytest.approx(1e-3)
    assert worst["same_top1"] == 0.0
    assert worst["exact_token_samples"] == 0.5


def test_a_nan_in_one_sample_makes_the_worst_value_non_finite_and_the_margin_zero() -> None:
    logits = np.array([[0.0, 1.0, 0.5]])
    fine, broken = outputs(np.ones((2, 4)), logits), outputs(np.full((2, 4), np.nan), logits)
    worst = worst_of([(fine, fine), (fine, broken)])
    assert math.isnan(worst["rel_l2"]) and worst["max_abs_err"] == math.inf
    assert margins(worst, LIMITS)["rel_l2"] == margins(worst, LIMITS)["max_abs_err"] == 0.0


def test_a_row_prints_value_limit_and_margin() -> None:
    worst = {"max_abs_err": 1e-5, "min_cosine": 1.0, "rel_l2": 0.0, "kl_max": 0.0, "same_top1": 1.0, "kernel": 0.0}
    counts = {"exact_token_samples": 1.0, "min_reference_p": 0.5, "steps": 20, "ambiguous_steps": 1}
    settled = {"settled_kl_max": 0.0, "settled_same_top1": 1.0}
    row = format_row("onnx vs original", {**worst, **counts, **settled}, LIMITS)
    assert "max_abs_err 1e-05 (limit 0.0001, margin 10×)" in row
    assert "kernel 0 (limit 0.02, margin ∞)" in row
    assert row.endswith(
        "min reference p 0.5  ambiguous steps 1/20 (settled steps: KL 0, same top-1 1)  exact tokens 100%"
    )


def test_worst_of_counts_the_steps_a_settled_p_allowance_leaves_ungated() -> None:
    logits = np.array([[9.0, 0.0, 0.0], [1.0, 0.9, 0.0], [0.0, 9.0, 0.0]])  # step 1: the reference hesitates
    embedding = np.ones((2, 4))
    worst = worst_of([(outputs(embedding, logits), outputs(embedding, logits))], settled_p=0.9)
    assert (worst["ambiguous_steps"], worst["steps"]) == (1, 3)
    assert worst["min_reference_p"] == pytest.approx(np.exp(1) / (np.exp(1) + np.exp(0.9) + 1))


def test_no_self_noise_prints_only_the_path_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--no-self-noise``: a new path's rows without re-running the reference against itself (the costly part)."""
    monkeypatch.setattr(noise_floor, "self_noise", lambda *_: pytest.fail("the self-noise runs were not skipped"))
    monkeypatch.setattr(noise_floor, "fixture_samples", list)
    monkeypatch.setattr(noise_floor, "ParitySession", lambda _settings: SimpleNamespace(tolerance=tolerance_for))
    monkeypatch.setattr(noise_floor, "collect", lambda *_: [])
    assert noise_floor.main(["--paths", "onnx,onnx-bf16", "--no-self-noise", "--model", "fixture"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row.split(":")[0] for row in rows] == ["fixture onnx vs original", "fixture onnx-bf16 vs original"]


def test_worst_of_judges_kl_and_same_top1_apart_on_the_settled_steps() -> None:
    reference = np.array([[9.0, 0.0, 0.0], [1.0, 0.9, 0.0], [0.0, 9.0, 0.0]])  # step 1: the reference hesitates
    candidate = np.array([[9.0, 0.0, 0.0], [0.9, 1.0, 0.0], [0.0, 9.0, 0.0]])  # flips only the hesitating step
    embedding = np.ones((2, 4))
    worst = worst_of([(outputs(embedding, reference), outputs(embedding, candidate))], settled_p=0.9)
    assert worst["same_top1"] == pytest.approx(2 / 3) and worst["kl_max"] > 0
    assert worst["settled_same_top1"] == 1.0 and worst["settled_kl_max"] == pytest.approx(0.0, abs=1e-12)
