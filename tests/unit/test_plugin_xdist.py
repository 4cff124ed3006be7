"""Under pytest-xdist each worker judges its share; the controller merges the shares into one table and report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vlparity.report.json_report import report_from_dict, report_to_dict
from vlparity.report.merge import ReportShare, merge_reports
from vlparity.report.model import CheckResult, ParityReport, PathReport

pytest_plugins = ["pytester"]

TWO_SAMPLES = """
import pytest
from vlparity.inputs import Sample, fixture_images

@pytest.mark.parametrize("index", [0, 1])
def test_split(parity_session, index):
    sample = Sample((fixture_images()[index],), "What is in the image?")
    assert parity_session.check_tokens("split", sample).passed
"""


def _report(sample: str, seconds: float) -> ReportShare:
    metrics = {"kl_max": math.nan, "first_divergence": None, "exact": True}
    check = CheckResult("split", "tokens", sample, None, True, (), metrics, {"kl_per_step": [0.0]})
    path = PathReport(
        "split", "split path", [check], memory={"generate": {"peak_rss_bytes": 7, "cuda_peak_bytes": None}}
    )
    report = ParityReport("m", "qwen2_5_vl", "cpu", "float32", "original", {"torch": "x"}, {"split": path})
    return ReportShare(report, {"split": {"generate": [seconds]}})


def test_a_report_survives_the_dict_round_trip() -> None:
    report = _report("a", 1.0).report
    again = report_from_dict(json.loads(json.dumps(report_to_dict(report))))
    assert again.paths["split"].checks[0].sample_id == "a" and math.isnan(
        again.paths["split"].checks[0].metrics["kl_max"]
    )
    assert json.dumps(report_to_dict(again)) == json.dumps(report_to_dict(report))


def test_merged_shares_hold_every_check_and_timings_over_all_calls() -> None:
    merged = merge_reports([_report("b", 3.0), _report("a", 1.0)])
    split = merged.paths["split"]
    assert [check.sample_id for check in split.checks] == ["a", "b"]
    assert split.timings["generate"]["count"] == 2 and split.timings["generate"]["median"] == 2.0
    assert split.memory["generate"]["peak_rss_bytes"] == 7


def test_two_workers_give_one_table_and_one_report(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(TWO_SAMPLES)
    report = pytester.path / "parity.json"
    result = pytester.runpytest_subprocess(
        "-n", "2", "--vlparity-device", "cpu", "--vlparity-paths", "original,split", "--vlparity-max-new-tokens", "2",
        f"--vlparity-cache-dir={tmp_path}", f"--vlparity-report={report}",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*vlparity parity summary*", "split*tokens*2*0*PASS *", "overall: PASS"])
    assert len(json.loads(report.read_text())["paths"]["split"]["checks"]) == 2
