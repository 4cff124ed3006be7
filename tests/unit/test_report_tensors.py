"""The per-tensor error table (``tensors`` checks of onnx-bf16 / onnx-qdq) in every rendering: the lowest SQNR against
the fp32 graph and where, per location over every sample, the worst tensors of the worst sample, failures marked."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from typing import ClassVar

from tests.unit.report_samples import HOSTILE_SAMPLE, SAMPLE, TALL_SAMPLE, build_report, with_tensors
from vlparity.report.html import render_html
from vlparity.report.json_report import render_json, report_from_dict, report_to_dict
from vlparity.report.markdown import render_markdown
from vlparity.report.merge import ReportShare, merge_reports
from vlparity.report.model import CheckResult, tensor_blocks
from vlparity.report.table import render_table
from vlparity.report.views import fmt_db


def _md_section(markdown: str) -> str:
    start = markdown.index("### Per-tensor error table: onnx-qdq")
    return markdown[start : markdown.index("\n### ", start)]


def _html_section(page: str) -> str:
    start = page.index('<h2 id="tensors-onnx-qdq">')
    return page[start : page.index("<h2 ", start + 1)]


def _row(table: str, path: str, check: str) -> str:
    return next(line for line in table.splitlines() if line.split()[:2] == [path, check])


def _md_rows(markdown: str, first_cell: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |")]


def test_the_table_has_a_tensors_row_with_the_lowest_sqnr_and_where_it_is() -> None:
    row = _row(render_table(with_tensors(build_report())), "onnx-qdq", "tensors")
    assert row.split()[2:5] == ["2", "0", "PASS"]
    assert "min tensor SQNR 4.0 dB/0 dB (block 1: linear_16)" in row
    assert "min weight SQNR 36.5 dB/20 dB (block 0: vision.blocks.0.mlp.gate_proj.weight)" in row


def test_a_failing_tensors_check_fails_its_row_and_is_listed_with_its_reasons() -> None:
    table = render_table(with_tensors(build_report(), broken=True))
    row = _row(table, "onnx-qdq", "tensors")
    assert row.split()[2:5] == ["3", "1", "FAIL"] and "min tensor SQNR −∞ dB/0 dB (block 1: linear_16)" in row
    assert "min weight SQNR -9.5 dB/20 dB (block 1: vision.blocks.1.mlp.down_proj.weight)" in row
    assert any(
        line.startswith("FAIL onnx-qdq tensors [") and "tensor_min_sqnr_db" in line for line in table.splitlines()
    )


def test_json_summarises_the_worst_tensor_and_weight_over_every_sample() -> None:
    summary = json.loads(render_json(with_tensors(build_report())))["paths"]["onnx-qdq"]["tensors"]
    assert (summary["checks"], summary["failed"], summary["tensors_compared"], summary["weights_compared"]) == (
        2,
        0,
        7,
        4,
    )
    assert summary["min_sqnr_db"] == 4.0
    assert summary["worst_tensor"] == {
        "name": "linear_16", "location": "block 1", "scope": "attentions.1.proj", "sqnr_db": 4.0,
        "rounding_sqnr_db": 31.6, "cosine": 0.8033038, "max_abs_err": 5.18, "sample": TALL_SAMPLE,
    }  # fmt: skip
    assert summary["worst_weight"]["name"] == "vision.blocks.0.mlp.gate_proj.weight"
    assert summary["min_weight_sqnr_db"] == 36.5


def test_json_has_each_locations_minimum_over_the_samples_in_tower_order() -> None:
    blocks = json.loads(render_json(with_tensors(build_report())))["paths"]["onnx-qdq"]["tensors"]["blocks"]
    assert [block["location"] for block in blocks] == ["patch_embed", "block 0", "block 1", "merger", "tower"]
    patch_embed, block_1 = blocks[0], blocks[2]
    assert (patch_embed["min_sqnr_db"], patch_embed["sample"]) == (28.4, TALL_SAMPLE)  # identical on the other one
    assert (block_1["min_sqnr_db"], block_1["worst_tensor"], block_1["tensors"]) == (4.0, "linear_16", 3)
    assert blocks[-1]["min_weight_sqnr_db"] is None and blocks[-1]["worst_weight"] is None


def test_paths_without_tensors_checks_have_a_null_tensors_summary() -> None:
    paths = json.loads(render_json(with_tensors(build_report())))["paths"]
    assert {name: path["tensors"] is None for name, path in paths.items()} == {
        "original": True, "split": True, "onnx-int8": True, "onnx-qdq": False,
    }  # fmt: skip


def test_non_finite_sqnr_is_written_as_a_string() -> None:
    document = json.loads(render_json(with_tensors(build_report(), broken=True)))
    assert document["paths"]["onnx-qdq"]["tensors"]["min_sqnr_db"] == "-Infinity"
    passing = next(check for check in document["paths"]["onnx-qdq"]["checks"] if check["sample"] == SAMPLE)
    assert passing["series"]["blocks"][0]["min_sqnr_db"] == "Infinity"  # patch_embed identical on this sample


def test_tensors_checks_survive_the_round_trip_through_a_json_file() -> None:
    report = with_tensors(build_report(), broken=True)
    again = report_from_dict(json.loads(render_json(report)))
    assert render_json(again) == render_json(report)
    broken = next(check for check in again.paths["onnx-qdq"].checks if check.sample_id == HOSTILE_SAMPLE)
    assert broken.check == "tensors" and not broken.passed and broken.metrics["min_sqnr_db"] == -math.inf
    assert again.paths["onnx-qdq"].tensors_summary() == report.paths["onnx-qdq"].tensors_summary()
    assert render_markdown(again) == render_markdown(report)


def test_a_tensor_named_like_a_non_finite_number_stays_text_after_the_round_trip() -> None:
    report = with_tensors(build_report())
    check = report.paths["onnx-qdq"].checks[0]
    check.series["worst_tensors"][0]["name"] = "NaN"
    again = report_from_dict(json.loads(render_json(report)))
    assert again.paths["onnx-qdq"].checks[0].series["worst_tensors"][0]["name"] == "NaN"


def test_merged_worker_shares_keep_the_tensors_checks() -> None:
    report = with_tensors(build_report(), broken=True)
    share = report_from_dict(json.loads(json.dumps(report_to_dict(report))))  # how a pytest-xdist worker sends it
    merged = merge_reports([ReportShare(share)])
    assert merged.paths["onnx-qdq"].tensors_summary() == report.paths["onnx-qdq"].tensors_summary()


def test_a_location_one_sample_lacks_keeps_its_place_in_tower_order() -> None:
    def check(sample: str, *locations: str) -> CheckResult:
        blocks = [{"location": where, "tensors": 1, "min_sqnr_db": 20.0, "worst_tensor": "t"} for where in locations]
        return CheckResult("onnx-qdq", "tensors", sample, None, True, (), {}, {"blocks": blocks})

    merged = tensor_blocks([check("a", "block 0", "block 2", "tower"), check("b", "patch_embed", "block 1", "block 2")])
    assert [row["location"] for row in merged] == ["patch_embed", "block 0", "block 1", "block 2", "tower"]


def test_markdown_shows_each_locations_minimum_and_the_worst_tensors_of_the_worst_sample() -> None:
    markdown = render_markdown(with_tensors(build_report()))
    assert "### Per-tensor error table: onnx-qdq (✅ PASS)" in markdown
    tall = "tall\\_140x420\\|what-is-in-the-image"
    assert _md_rows(markdown, "block 1") == [
        f"| block 1 | 3 | 4.0 | linear\\_16 | {tall} | 37.2 | attentions.1.qkv.weight |"
    ]
    assert f"Worst tensors of the worst sample, {tall} (✅ PASS)" in markdown
    assert _md_rows(markdown, "linear\\_16") == [
        "| linear\\_16 | block 1 | attentions.1.proj | 4.0 | 31.6 | 0.8033038 | 5.18 |"
    ]


def test_markdown_marks_figures_under_the_limits_as_failed() -> None:
    markdown = render_markdown(with_tensors(build_report(), broken=True))
    assert "### Per-tensor error table: onnx-qdq (❌ FAIL)" in markdown
    (block_1,) = _md_rows(markdown, "block 1")
    assert block_1.split(" | ")[2] == "❌ −∞" and block_1.split(" | ")[5] == "❌ -9.5"
    assert _md_rows(markdown, "merger")[0].split(" | ")[2] == "12.5"  # above the limit: not marked
    assert _md_rows(markdown, "image\\_embeds")[0].split(" | ")[3] == "❌ −∞"


def test_infinite_sqnr_reads_as_infinity_in_every_rendering() -> None:
    report = with_tensors(build_report(), broken=True)
    markdown, page = _md_section(render_markdown(report)), _html_section(render_html(report))
    assert "| ❌ −∞ |" in markdown and '<td class="num failed" title="under its limit">−∞</td>' in page
    tower = _md_rows(markdown, "tower")[0].split(" | ")
    assert (tower[2], tower[5]) == ("❌ −∞", "-")  # NaN in the tower's tensors; no weight of its own
    passing = _md_section(render_markdown(with_tensors(build_report())))
    assert _md_rows(passing, "view\\_16")[0].split(" | ")[4] == "∞"  # own rounding of a reshape: identical
    assert [fmt_db(value) for value in (math.inf, -math.inf, math.nan, None, 15.17)] == ["∞", "−∞", "nan", "-", "15.2"]


def test_the_summaries_show_both_tensor_gates_next_to_their_limits() -> None:
    report = with_tensors(build_report())
    markdown = render_markdown(report)
    header = next(line for line in markdown.splitlines() if line.startswith("| path |"))
    columns = dict(zip(header.split(" | "), _md_rows(markdown, "onnx-qdq")[0].split(" | "), strict=True))
    assert columns["tensor checks (failed)"] == "2 (0)"
    assert columns["min tensor SQNR/limit"] == "4.0 dB/0 dB (block 1: linear\\_16)"
    assert columns["min weight SQNR/limit"] == "36.5 dB/20 dB (block 0: vision.blocks.0.mlp.gate\\_proj.weight)"
    assert columns["vision checks (failed)"] == "0 (0)"
    page = render_html(report)
    assert "<th>min tensor SQNR/limit</th>" in page and ">4.0 dB/0 dB (block 1: linear_16)</td>" in page


def test_html_shows_each_locations_minimum_and_the_worst_tensors_of_the_worst_sample() -> None:
    page = render_html(with_tensors(build_report()))
    assert (
        '<h2 id="tensors-onnx-qdq">Per-tensor error table: onnx-qdq <span class="badge pass">PASS</span></h2>' in page
    )
    blocks = re.search(r'<table class="tensor-blocks">(.*?)</table>', page)
    assert blocks is not None
    assert (
        '<tr><td>block 1</td><td class="num">3</td><td class="num">4.0</td><td>linear_16</td>'
        f'<td>{TALL_SAMPLE}</td><td class="num">37.2</td><td>attentions.1.qkv.weight</td></tr>'
    ) in blocks.group(1)
    worst = re.search(r'<table class="worst-tensors">(.*?)</table>', page)
    assert worst is not None and worst.group(1).count("<tr>") == 1 + 7  # header and the tall sample's tensors
    assert "<tr><td>linear_16</td><td>block 1</td><td>attentions.1.proj</td>" in worst.group(1)


def test_html_marks_figures_under_the_limits_in_the_failure_colour() -> None:
    page = render_html(with_tensors(build_report(), broken=True))
    assert "td.failed { color: #cf222e;" in page
    blocks = re.search(r'<table class="tensor-blocks">(.*?)</table>', page)
    assert blocks is not None
    failed = re.findall(r'<td class="num failed" title="under its limit">([^<]*)</td>', blocks.group(1))
    assert failed == ["−∞", "-9.5", "−∞"]  # block 1 tensor and weight, tower tensor
    assert '<h2 id="tensors-onnx-qdq">Per-tensor error table: onnx-qdq <span class="badge fail">FAIL</span>' in page


class _Balance(HTMLParser):
    """Open elements on a stack; any end tag that does not close the innermost one is recorded."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "br",
        "img",
        "input",
        "hr",
        "link",
        "rect",
        "line",
        "path",
        "image",
        "circle",
        "stop",
        "use",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_the_tensor_sections_are_well_formed_and_escape_their_text() -> None:
    page = render_html(with_tensors(build_report(), broken=True))
    section = _html_section(page)
    parser = _Balance()
    parser.feed(section)
    assert parser.errors == [] and parser.stack == []
    assert "<script>" not in section and "&lt;script&gt;alert" in section  # a hostile scope and sample id


def test_reports_without_tensors_checks_are_unchanged() -> None:
    report = build_report()
    assert not any(line.split()[1:2] == ["tensors"] for line in render_table(report).splitlines()[1:])
    assert {path["tensors"] for path in json.loads(render_json(report))["paths"].values()} == {None}
    markdown, page = render_markdown(report), render_html(report)
    assert "Per-tensor" not in markdown and "tensor checks" not in markdown and "SQNR/limit" not in markdown
    assert "Per-tensor" not in page and "tensor checks" not in page and "SQNR/limit" not in page
    header = next(line for line in markdown.splitlines() if line.startswith("| path |"))
    assert len(header.split(" | ")) == 13  # path, two check counts, nine gates, verdict


def test_a_minimum_limit_that_is_off_reads_minus_infinity_in_the_tolerance_table() -> None:
    markdown = render_markdown(with_tensors(build_report()))
    assert _md_rows(markdown, "tensor\\_min\\_sqnr\\_db") == ["| tensor\\_min\\_sqnr\\_db | −∞ | −∞ | 0 |"]
    assert _md_rows(markdown, "weight\\_min\\_sqnr\\_db") == ["| weight\\_min\\_sqnr\\_db | −∞ | −∞ | 20 |"]
