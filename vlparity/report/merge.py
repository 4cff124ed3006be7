"""One report from the shares of several processes (pytest-xdist workers each judge part of the checks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vlparity.report.model import ParityReport, PathReport, summarise_durations

Durations = dict[str, dict[str, list[float]]]  # path → stage → seconds of every timed call


@dataclass
class ReportShare:
    """What one process contributes: its report and the raw stage durations behind its timing summaries."""

    report: ParityReport
    durations: Durations = field(default_factory=dict)


def merge_reports(shares: list[ReportShare]) -> ParityReport:
    """Checks are concatenated; timings are recomputed from all raw durations; memory peaks take the maximum; the
    provenance is the earliest share's (when the run began)."""
    if not shares:
        raise ValueError("no report to merge")
    first = shares[0].report
    merged = ParityReport(first.model, first.model_type, first.device, first.dtype, first.reference, first.versions)
    stamped = [share.report.provenance for share in shares if share.report.provenance is not None]
    merged.provenance = min(stamped, key=lambda provenance: provenance.timestamp) if stamped else None  # earliest
    for share in shares:
        for name, path in share.report.paths.items():
            target = merged.paths.setdefault(name, PathReport(name=name, description=path.description))
            target.description = target.description or path.description
            target.checks.extend(path.checks)
            target.artefact_bytes = target.artefact_bytes or path.artefact_bytes
            target.tolerance_version = target.tolerance_version or path.tolerance_version
            target.details = target.details or path.details
            for stage, peaks in path.memory.items():
                seen = target.memory.setdefault(stage, dict.fromkeys(peaks))
                for key, value in peaks.items():
                    seen[key] = value if seen.get(key) is None else max(seen[key], value or 0)
    for name, path in merged.paths.items():
        stages: dict[str, list[float]] = {}
        for share in shares:
            for stage, seconds in share.durations.get(name, {}).items():
                stages.setdefault(stage, []).extend(seconds)
        path.timings = {stage: summarise_durations(seconds) for stage, seconds in stages.items() if seconds}
        path.checks.sort(key=lambda check: (check.sample_id, check.check, check.image_index or 0))
    return merged
