"""The JSON report (schema v6): plot series per check, memory and limits per path, warnings, provenance and versions,
NaN as a string."""

from __future__ import annotations

import json
import socket
from dataclasses import replace

from tests.unit.report_samples import PROVENANCE, build_report, with_references
from vlparity.parity.tolerances import load_tolerances
from vlparity.provenance import VERDICT_LIBRARIES
from vlparity.report.json_report import render_json, report_from_dict
from vlparity.report.merge import ReportShare, merge_reports
from vlparity.session import ParitySession, RunSettings


def _document() -> dict:
    return json.loads(render_json(build_report()))


def test_schema_version_is_6() -> None:
    assert _document()["schema_version"] == 6


def test_every_path_summarises_its_deepstack_checks_apart_from_its_vision_checks() -> None:
    split = _document()["paths"]["split"]
    assert split["deepstack"]["checks"] == 0  # the fixture family has no DeepStack
    assert split["vision"]["checks"] > 0


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


def test_provenance_is_recorded_beside_the_versions() -> None:
    document = _document()
    assert document["provenance"] == {
        "timestamp": "2026-12-01T02:30:00Z",
        "host": "ci-runner-7",
        "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
        "cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
        "commit": "0c4cfc1d0c4cfc1d0c4cfc1d0c4cfc1d0c4cfc1d",
        "dirty": True,
    }
    assert document["versions"]["onnxruntime"] == "1.32.0"


def test_provenance_survives_the_round_trip_through_a_worker_share() -> None:
    assert report_from_dict(json.loads(render_json(build_report()))).provenance == PROVENANCE


def test_merged_shares_keep_the_provenance_of_the_earliest_share() -> None:
    late, early = build_report(), build_report()
    late.provenance = replace(PROVENANCE, timestamp="2026-12-01T02:31:00Z", host="worker-1")
    merged = merge_reports([ReportShare(late), ReportShare(early)])
    assert merged.provenance == PROVENANCE


def test_the_session_stamps_its_report_with_provenance_and_every_verdict_library() -> None:
    report = ParitySession(RunSettings(device="cpu", paths=("original",))).report()  # nothing run: nothing loaded
    assert report.provenance is not None and report.provenance.host == socket.gethostname()
    assert set(VERDICT_LIBRARIES) <= report.versions.keys()
