"""JSON rendering of a ``ParityReport`` (schema v5, every field documented in docs/report-schema.md)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vlparity.provenance import Provenance
from vlparity.report.files import atomic_write_text
from vlparity.report.model import SCHEMA_VERSION, CheckResult, ParityReport, PathReport
from vlparity.report.views import accuracy_summary, report_warnings, tolerance_limits


def report_to_dict(report: ParityReport) -> dict[str, Any]:
    """Schema v6: ``{schema_version, model, model_type, device, dtype, reference, passed, warnings, versions,
    provenance{timestamp,host,platform,cpu,commit,dirty},
    paths: {name: {passed, description, tolerance_version, limits, vision{max_abs_err,min_cosine,…}, deepstack{…},
    tokens{exact,first_divergence,…}, tensors{min_sqnr_db,worst_tensor,blocks,…} or null, accuracy{eval_set,n,…} or
    null, timings{stage: {count,total,mean,median,min,max}},
    memory{stage: {peak_rss_bytes,cuda_peak_bytes}}, artefact_bytes, details, checks[{…, metrics, series}]}}}``.
    ``limits`` and ``warnings`` are derived (tolerance profile, reference checks), so they are not read back."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "model_type": report.model_type,
        "device": report.device,
        "dtype": report.dtype,
        "reference": report.reference,
        "passed": report.passed,
        "warnings": report_warnings(report),
        "versions": report.versions,
        "provenance": asdict(report.provenance) if report.provenance is not None else None,
        "paths": {
            name: {
                "passed": path.passed if name != report.reference else None,
                "description": path.description,
                "tolerance_version": path.tolerance_version,
                "limits": tolerance_limits(report, name),
                "vision": path.vision_summary(),
                "deepstack": path.vision_summary("deepstack"),
                "tokens": path.tokens_summary(),
                "tensors": path.tensors_summary(),
                "accuracy": accuracy_summary(report, name),
                "timings": path.timings,
                "memory": path.memory,
                "artefact_bytes": path.artefact_bytes,
                "details": path.details,
                "checks": [
                    {
                        "check": check.check,
                        "sample": check.sample_id,
                        "image_index": check.image_index,
                        "passed": check.passed,
                        "reasons": list(check.reasons),
                        "metrics": check.metrics,
                        "series": check.series,
                    }
                    for check in path.checks
                ],
            }
            for name, path in report.paths.items()
        },
    }


def _json_safe(value: Any) -> Any:
    """NaN/Inf are not JSON: write them as the strings "NaN", "Infinity", "-Infinity" (and say so in the docs)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def render_json(report: ParityReport) -> str:
    return json.dumps(_json_safe(report_to_dict(report)), indent=2, allow_nan=False) + "\n"


def write_json_report(report: ParityReport, path: Path) -> Path:
    return atomic_write_text(path, render_json(report))


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Fields of checks' metrics and series that hold text (answers, token pieces, tensor names, …): a model may well answer
# "NaN". Every other "NaN"/"Infinity"/"-Infinity" string there is a number the file had to write as a string.
_TEXT_FIELDS = frozenset({
    "reference_text", "candidate_text", "reference_pieces", "candidate_pieces", "attribution", "image", "eval_set",
    "question", "answer", "reference", "candidate", "direction", "source", "name", "scope", "location",
    "worst_tensor", "worst_location", "worst_weight",
})  # fmt: skip


def _numbers(value: Any, key: str | None = None) -> Any:
    """A check's metrics or series as read from a report file, with the non-finite numbers back as floats (the file
    writes them as "NaN", "Infinity", "-Infinity"; text fields keep such strings as they are)."""
    if isinstance(value, dict):
        return {name: _numbers(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_numbers(item, key) for item in value]
    if isinstance(value, str) and value in _NON_FINITE and key not in _TEXT_FIELDS:
        return _NON_FINITE[value]
    return value


def _check_from_dict(name: str, check: dict[str, Any]) -> CheckResult:
    return CheckResult(
        path=name,
        check=check["check"],
        sample_id=check["sample"],
        image_index=check["image_index"],
        passed=check["passed"],
        reasons=tuple(check["reasons"]),
        metrics=_numbers(check["metrics"]),
        series=_numbers(check["series"]),
    )


def report_from_dict(data: dict[str, Any]) -> ParityReport:
    """Inverse of ``report_to_dict`` (summaries are recomputed from the checks, not read back). Reads a report file
    (non-finite numbers as strings, turned back into floats so that summaries compare and render them) as well as a
    worker's share (``json.dumps``' default: non-finite numbers as such)."""
    report = ParityReport(
        model=data["model"],
        model_type=data["model_type"],
        device=data["device"],
        dtype=data["dtype"],
        reference=data["reference"],
        versions=data["versions"],
        provenance=Provenance(**data["provenance"]) if data.get("provenance") else None,
    )
    for name, path in data["paths"].items():
        report.paths[name] = PathReport(
            name=name,
            description=path["description"],
            checks=[_check_from_dict(name, check) for check in path["checks"]],
            timings=path["timings"],
            artefact_bytes=path["artefact_bytes"],
            tolerance_version=path["tolerance_version"],
            details=path["details"],
            memory=path["memory"],
        )
    return report
