"""Formatting shared by the renderings: numbers people can read without hiding what matters."""

from __future__ import annotations

from tests.unit.report_samples import build_report
from vlparity.report.views import answers, fmt_bytes, fmt_cosine, fmt_seconds, overall


def test_cosines_near_one_show_their_gap_unless_it_is_float64_rounding() -> None:
    assert (fmt_cosine(1 - 6.6e-5), fmt_cosine(1 - 2.2e-16), fmt_cosine(0.5)) == ("1 − 6.6e-05", "1", "0.5")


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
