"""The JSON report (schema v2): plot series per check, memory per path, NaN written as a string."""

from __future__ import annotations

import json

from tests.unit.report_samples import build_report
from vlparity.report.json_report import render_json


def _document() -> dict:
    return json.loads(render_json(build_report()))


def test_schema_version_is_2() -> None:
    assert _document()["schema_version"] == 2


def test_checks_carry_their_plot_series() -> None:
    checks = _document()["paths"]["split"]["checks"]
    vision, tokens = checks
    assert set(vision["series"]) == {"token_cosine", "grid", "image", "abs_err_histogram"}
    assert tokens["series"]["reference_pieces"] == ["a", " <script>", "<|im_end|>"]


def test_non_finite_numbers_inside_series_are_strings() -> None:
    failing = _document()["paths"]["onnx-int8"]["checks"]
    assert failing[0]["series"]["token_cosine"][2] == "NaN"
    assert failing[1]["series"]["kl_per_step"][1] == "NaN"


def test_memory_per_stage_is_reported() -> None:
    assert _document()["paths"]["split"]["memory"]["generate"] == {
        "peak_rss_bytes": 900 * 2**20,
        "cuda_peak_bytes": None,
    }
