"""render_markdown: the GitHub job summary of a run (verdicts, failing checks with reasons, answers), escaped."""

from __future__ import annotations

import dataclasses

from tests.unit.report_samples import build_report, hesitating_awq_report, with_references
from vlparity.parity.tolerances import Tolerance, load_tolerances
from vlparity.report.markdown import MAX_FAILURES, md_text, render_markdown


def _table_rows(markdown: str, first_cell: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith(f"| {first_cell}")]


def test_heading_says_fail_when_a_path_failed() -> None:
    assert render_markdown(build_report()).splitlines()[0] == "## vlparity parity report: ❌ FAIL"


def test_heading_says_pass_when_every_path_passed() -> None:
    report = build_report()
    del report.paths["onnx-int8"]
    assert render_markdown(report).splitlines()[0] == "## vlparity parity report: ✅ PASS"


def test_one_summary_row_per_candidate_path_with_its_verdict() -> None:
    markdown = render_markdown(build_report())
    assert _table_rows(markdown, "split")[0].endswith("| ✅ PASS |")
    assert _table_rows(markdown, "onnx-int8")[0].endswith("| ❌ FAIL |")
    assert not _table_rows(markdown, "original |")


def test_nan_metrics_are_shown_as_nan_next_to_their_limits() -> None:
    cells = _table_rows(render_markdown(build_report()), "onnx-int8")[0].split(" | ")
    assert cells[3:6] == ["nan/∞", "nan/0.95", "nan/0.15"]  # max |Δ|, min cosine, rel L2


def test_kl_and_same_top1_are_shown_as_judged_with_their_limits() -> None:
    cells = _table_rows(render_markdown(hesitating_awq_report()), "awq")[0].split(" | ")
    header = next(line for line in render_markdown(hesitating_awq_report()).splitlines() if line.startswith("| path"))
    columns = dict(zip(header.split(" | "), cells, strict=True))
    assert columns["KL/limit"] == "0.0008/0.6 (settled steps, p ≥ 0.9, 1 ambiguous; all steps 0.0405)"
    assert columns["same top-1/limit"] == "1/0.9 (settled steps)"
    assert columns["kernel \\|Δlogit\\|/limit"] == "0.005/0.05" and columns["weight rel L2/limit"] == "0.19/0.35"


def test_a_degenerate_reference_gets_a_warnings_section() -> None:
    markdown = render_markdown(with_references(build_report(), ([8, 9, 2], "b c"), ([8, 9, 2], "b c")))
    assert "### ⚠️ Warnings (1)" in markdown and "- degenerate reference: every sample (2)" in markdown
    assert markdown.splitlines()[0].endswith("✅ PASS")


def test_failing_checks_are_listed_with_their_reasons() -> None:
    markdown = render_markdown(build_report())
    assert "### Failing checks (2)" in markdown
    assert "- **onnx-int8** tokens [" in markdown and "tokens differ from step 0" in markdown


def test_hostile_text_is_inert_and_keeps_the_table_shape() -> None:
    markdown = render_markdown(build_report())
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| sample |"))
    for row in _table_rows(markdown, "square"):
        assert row.replace("\\|", "").count("|") == header.count("|")


def test_md_text_escapes_markdown_syntax_and_joins_lines() -> None:
    assert md_text("*a*\n_b_ [c](d) `e` #f") == r"\*a\* \_b\_ \[c\](d) \`e\` \#f"


def test_answers_show_equals_for_the_reference_tokens() -> None:
    row = _table_rows(render_markdown(build_report()), "square\\_224\\|what")[0]
    assert row.endswith("| = | - |")  # split said the same; onnx-int8 did not answer this sample


def test_failures_beyond_the_limit_are_counted_not_listed() -> None:
    report = build_report()
    path = report.paths["onnx-int8"]
    path.checks = [dataclasses.replace(path.checks[0], image_index=i) for i in range(MAX_FAILURES + 3)]
    markdown = render_markdown(report)
    assert markdown.count("- **onnx-int8** vision") == MAX_FAILURES
    assert "- … and 3 more" in markdown


def test_a_report_where_no_check_ran_says_so() -> None:
    report = build_report()
    for path in report.paths.values():
        path.checks = []
    assert render_markdown(report).splitlines()[0] == "## vlparity parity report: no check ran"


def test_the_run_line_says_when_where_and_from_which_commit() -> None:
    line = render_markdown(build_report()).splitlines()[2]
    assert line.endswith("; run 2026-12-01T02:30:00Z on ci-runner-7, vlparity 0.1.0 at 0c4cfc1d0c4c (modified)")


def test_every_tolerance_key_of_each_candidate_is_listed() -> None:
    markdown = render_markdown(build_report())
    assert "| key | split | onnx-int8 |" in markdown
    int8 = load_tolerances(model_type="qwen2_5_vl")["onnx-int8"]
    assert _table_rows(markdown, "vision\\_min\\_cosine")[0].endswith(f"| {int8.vision_min_cosine:.10g} |")
    assert {row.split(" | ")[0][2:] for row in _table_rows(markdown, "")} >= {
        md_text(key) for key in Tolerance.__dataclass_fields__
    }


def test_the_provenance_table_lists_the_machine_and_every_version() -> None:
    markdown = render_markdown(build_report())
    assert "| CPU | Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz |" in markdown
    assert "| gptqmodel | not installed |" in markdown and "| onnxruntime | 1.32.0 |" in markdown
