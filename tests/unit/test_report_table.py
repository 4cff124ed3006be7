"""render_table: the terminal summary shows what the verdict judged next to its limit, and warns about the reference."""

from __future__ import annotations

from tests.unit.report_samples import TOLERANCE_VERSION, build_report, hesitating_awq_report, with_references
from vlparity.report.table import render_table


def _row(table: str, path: str, check: str) -> str:
    return next(line for line in table.splitlines() if line.split()[:2] == [path, check])


def test_kl_is_shown_as_judged_on_settled_steps_next_to_its_limit() -> None:
    """Issue #14: "KL max 0.0405 … PASS" against a 0.01 limit read as a broken gate."""
    row = _row(render_table(hesitating_awq_report()), "awq", "tokens")
    assert "KL 0.0008/0.6 (settled steps, p ≥ 0.9, 1 ambiguous; all steps 0.0405)" in row
    assert row.split()[4] == "PASS" and "KL max" not in row


def test_every_vision_limit_is_shown() -> None:
    row = _row(render_table(build_report()), "onnx-int8", "vision")
    assert "max|Δ| nan/∞  min cos nan/0.95  rel L2 nan/0.15" in row


def test_the_header_names_the_tolerance_version() -> None:
    assert render_table(build_report()).splitlines()[0].endswith(f", tolerances v{TOLERANCE_VERSION}")


def test_a_degenerate_reference_is_warned_without_failing() -> None:
    report = with_references(build_report(), ([8, 9, 2], "b c"), ([8, 9, 2], "b c"))
    lines = render_table(report).splitlines()
    assert any(line.startswith("WARN degenerate reference: every sample (2)") for line in lines)
    assert lines[-1] == "overall: PASS"


def test_a_generation_config_warning_is_printed_in_the_table() -> None:
    report = build_report()
    report.paths["split"].details["generation_config"] = {
        "file": "x",
        "fails": [],
        "warns": ["pad_token_id 0 (original: 2)"],
    }
    assert "WARN split: pad_token_id 0 (original: 2)" in render_table(report).splitlines()
