"""Formatting shared by the renderings: numbers people can read without hiding what matters."""

from __future__ import annotations

from tests.unit.report_samples import build_report, hesitating_awq_report, with_references
from vlparity.report.views import (
    answers,
    fmt_bytes,
    fmt_cosine,
    fmt_seconds,
    overall,
    reference_warnings,
    report_warnings,
    token_gates,
    vision_gates,
)


def test_cosines_near_one_show_seven_digits_and_float64_rounding_reads_one() -> None:
    assert (fmt_cosine(1 - 6.6e-5), fmt_cosine(1 - 2.2e-16), fmt_cosine(0.5)) == ("0.999934", "1", "0.5")


def test_seconds_and_bytes_pick_a_readable_unit() -> None:
    assert [fmt_seconds(s) for s in (2e-5, 0.0123, 4.567)] == ["20 µs", "12.3 ms", "4.57 s"]
    assert [fmt_bytes(b) for b in (None, 512, 5 * 2**20, 3 * 2**30)] == ["-", "512 B", "5.0 MiB", "3.0 GiB"]


def test_answers_mark_the_reference_tokens_with_none() -> None:
    rows = answers(build_report())
    assert rows["square_224|what-is-in-the-image"]["split"] is None
    assert next(row["onnx-int8"] for sample, row in rows.items() if "onnx-int8" in row) == "b <script>"


def test_overall_is_none_when_no_check_ran() -> None:
    report = build_report()
    assert overall(report) is False
    for path in report.paths.values():
        path.checks = []
    assert overall(report) is None


def test_kl_shows_the_settled_figure_it_was_judged_on_next_to_its_limit() -> None:
    report = hesitating_awq_report()
    kl = next(gate for gate in token_gates(report, report.paths["awq"]) if gate.label == "KL")
    assert str(kl) == "KL 0.0008/0.6 (settled steps, p ≥ 0.9, 1 ambiguous; all steps 0.0405)"


def test_every_gated_figure_has_its_limit() -> None:
    report = hesitating_awq_report()
    tokens = [str(gate) for gate in token_gates(report, report.paths["awq"])]
    assert tokens[0] == "exact yes (rule top-5)" and "top1 1/0.9 (settled steps)" in tokens
    assert tokens[-2:] == ["kernel |Δlogit| 0.005/0.05", "weight rel L2 0.19/0.35"]
    failing = build_report()
    vision = [str(gate) for gate in vision_gates(failing, failing.paths["onnx-int8"])]
    assert vision == ["max|Δ| nan/∞", "min cos nan/0.95", "rel L2 nan/0.15"]


def test_a_path_judged_under_another_tolerance_version_shows_no_limit() -> None:
    report = build_report()
    report.paths["split"].tolerance_version = 1
    assert [str(gate) for gate in vision_gates(report, report.paths["split"])] == ["max|Δ| 0", "min cos 1", "rel L2 0"]


def test_a_varied_reference_gives_no_warning() -> None:
    assert reference_warnings(build_report()) == []


def test_a_reference_looping_on_one_token_is_warned() -> None:
    report = with_references(build_report(), ([7, 5, 5, 5, 5, 5, 2], "a a a a a"), ([8, 9, 2], "b c"))
    (warning,) = reference_warnings(report)
    assert warning.startswith("degenerate reference on s0: token 5 repeated 5 times in a row")


def test_a_short_run_in_a_long_answer_is_not_a_loop() -> None:
    """Qwen tokenizers split digits: "10000" is a run of four "0" tokens in an otherwise varied answer."""
    report = with_references(build_report(), ([1, 0, 0, 0, 0, 3, 4, 6, 8, 2], "10000 ..."), ([8, 9, 2], "b c"))
    assert reference_warnings(report) == []


def test_every_sample_answering_the_same_is_warned() -> None:
    report = with_references(build_report(), ([8, 9, 2], "b c"), ([8, 9, 2], "b c"), ([8, 9, 2], "b c"))
    (warning,) = reference_warnings(report)
    assert warning.startswith("degenerate reference: every sample (3) gets the same answer 'b c'")


def test_an_empty_reference_answer_is_warned() -> None:
    report = with_references(build_report(), ([2], ""), ([8, 9, 2], "b c"))
    assert reference_warnings(report) == ["degenerate reference on s0: an empty answer (no text in 1 token(s))"]


def test_same_top1_shows_the_all_steps_rate_when_an_ambiguous_step_flipped() -> None:
    """Issue #14's near tie: 0.875 over all steps, 1 over the settled ones the gate judged (limit 0.9)."""
    report = hesitating_awq_report()
    report.paths["awq"].checks[0].metrics["same_top1_rate"] = 0.875
    top1 = next(gate for gate in token_gates(report, report.paths["awq"]) if gate.label == "top1")
    assert str(top1) == "top1 1/0.9 (settled steps; all steps 0.875)"


def test_generation_config_fields_that_only_warn_reach_the_report_warnings() -> None:
    report = build_report()
    warning = "generation_config.json: temperature 0.7 (original: unset), both decode greedily"
    report.paths["split"].details["generation_config"] = {"file": "x", "fails": [], "warns": [warning]}
    assert report_warnings(report) == [f"split: {warning}"]
