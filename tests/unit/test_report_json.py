"""The JSON report (schema v3): plot series per check, memory and limits per path, warnings, NaN as a string."""

from __future__ import annotations

import json

from tests.unit.report_samples import build_report, with_references
from vlparity.parity.tolerances import load_tolerances
from vlparity.report.json_report import render_json


def _document() -> dict:
    return json.loads(render_json(build_report()))


def test_schema_version_is_3() -> None:
    assert _document()["schema_version"] == 3


def test_checks_carry_their_plot_series() -> None:
    checks = _document()["paths"]["split"]["checks"]
    vision, tokens = checks
    assert set(vision["series"]) == {"token_cosine", "grid", "image", "abs_err_histogram"}
    assert tokens["series"]["reference_pieces"] == ["b", " <script>", "<|im_end|>"]


def test_non_finite_numbers_inside_series_are_strings() -> None:
    failing = _document()["paths"]["onnx-int8"]["checks"]
    assert failing[0]["series"]["token_cosine"][2] == "NaN"
    assert failing[1]["series"]["kl_per_step"][1] == "NaN"


def test_memory_per_stage_is_reported() -> None:
    assert _document()["paths"]["split"]["memory"]["generate"] == {
        "peak_rss_bytes": 900 * 2**20,
        "cuda_peak_bytes": None,
    }


def test_each_candidate_carries_every_limit_of_its_profile() -> None:
    paths = _document()["paths"]
    assert paths["original"]["limits"] is None
    assert paths["onnx-int8"]["limits"]["vision_max_rel_l2"] == load_tolerances()["onnx-int8"].vision_max_rel_l2
    assert paths["onnx-int8"]["limits"]["vision_atol"] == "Infinity"


def test_warnings_about_the_reference_are_listed() -> None:
    assert _document()["warnings"] == []
    report = with_references(build_report(), ([5, 5, 5, 5, 2], "x x x x"), ([8, 2], "b"))
    assert json.loads(render_json(report))["warnings"][0].startswith("degenerate reference on s0")
