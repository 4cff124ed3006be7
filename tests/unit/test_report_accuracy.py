"""Task accuracy in every rendering: per-path accuracy, the delta with its CI, the limit, the verdict, the flips."""

from __future__ import annotations

import json

from tests.unit.report_samples import HOSTILE, build_report, with_accuracy
from vlparity.report.html import render_html
from vlparity.report.json_report import render_json, report_from_dict
from vlparity.report.markdown import render_markdown
from vlparity.report.merge import ReportShare, merge_reports
from vlparity.report.table import render_table


def test_the_table_has_an_accuracy_row_per_path_and_lists_the_flips() -> None:
    table = render_table(with_accuracy(build_report()))
    split = next(line for line in table.splitlines() if line.startswith("split") and " accuracy " in line)
    int8 = next(line for line in table.splitlines() if line.startswith("onnx-int8") and " accuracy " in line)
    assert split.split()[2:5] == ["40", "0", "PASS"] and "acc 100.0% (original 100.0%)" in split
    assert int8.split()[2:5] == ["40", "1", "FAIL"] and "drop 0.275/0.03" in int8 and "lost/gained 11/0" in int8
    assert "Δ -0.275 (95 % CI [" in int8
    assert "FAIL onnx-int8 accuracy [easy-vqa[:40]]: accuracy drop 0.275 > 0.03 (max_accuracy_drop)" in table
    assert "eval set easy-vqa[:40]: original 100.0% on 40 questions; 11 flipped answer(s):" in table
    assert "  onnx-int8 lost [0.png (easy-vqa test #1)] " in table
    assert "… 1 more in the JSON, Markdown or HTML report" in table


def test_json_carries_each_paths_accuracy_and_the_flips_and_survives_the_round_trip() -> None:
    report = with_accuracy(build_report())
    document = json.loads(render_json(report))
    int8 = document["paths"]["onnx-int8"]
    assert int8["passed"] is False and document["passed"] is False
    assert int8["accuracy"]["accuracy"] == 0.725 and int8["accuracy"]["reference_accuracy"] == 1.0
    assert int8["accuracy"]["flips"] == 11 and int8["accuracy"]["passed"] is False
    assert document["paths"]["original"]["accuracy"] == {"eval_set": "easy-vqa[:40]", "n": 40, "accuracy": 1.0}
    assert document["paths"]["split"]["accuracy"]["lost"] == 0
    check = next(check for check in int8["checks"] if check["check"] == "accuracy")
    assert check["series"]["flips"][0] == {
        "index": 1, "question": f"is it {HOSTILE}?", "image": "0.png", "answer": "yes", "reference": "yes",
        "candidate": HOSTILE, "direction": "lost", "source": "easy-vqa test #1",
    }  # fmt: skip
    assert render_json(report_from_dict(json.loads(render_json(report)))) == render_json(report)


def test_a_report_without_an_eval_set_has_null_accuracy() -> None:
    document = json.loads(render_json(build_report()))
    assert {path["accuracy"] for path in document["paths"].values()} == {None}
    assert "Task accuracy" not in render_markdown(build_report()) and 'id="accuracy"' not in render_html(build_report())


def test_markdown_shows_the_accuracy_table_and_escapes_the_flips() -> None:
    markdown = render_markdown(with_accuracy(build_report()))
    assert "### Task accuracy on easy-vqa\\[:40\\] (40 questions)" in markdown
    assert "| original | 100.0% | - | - | - | - | - | reference |" in markdown
    assert "| onnx-int8 | 72.5% | -0.275 | \\[" in markdown and "| 11/0 | 0.275/0.03 | ❌ FAIL |" in markdown
    assert "#### Flipped answers (11)" in markdown
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown


def test_html_shows_the_accuracy_table_and_every_flip_escaped() -> None:
    page = render_html(with_accuracy(build_report()))
    assert '<h2 id="accuracy">Task accuracy on easy-vqa[:40] (40 questions)</h2>' in page
    assert "Flipped answers (11)</h3>" in page and page.count("<td>lost</td>") == 11
    assert "<script>alert" not in page


def test_merged_worker_shares_keep_the_accuracy_checks() -> None:
    report = with_accuracy(build_report())
    merged = merge_reports([ReportShare(report)])
    assert merged.paths["onnx-int8"].accuracy_summary() == report.paths["onnx-int8"].accuracy_summary()
