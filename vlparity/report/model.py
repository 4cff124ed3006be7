"""The parity report: every check of every path, aggregated per path. Built by the session, rendered elsewhere."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from vlparity.parity.tolerances import Tolerance, load_tolerances
from vlparity.provenance import Provenance

SCHEMA_VERSION = 4  # v2: per-check ``series`` (plot data) and per-path ``memory``; v3: ``limits``, ``warnings``;
# v4: ``accuracy`` checks (task accuracy on an eval set) and each path's ``accuracy`` summary


@dataclass(frozen=True)
class CheckResult:
    """One judged comparison: ``vision`` (one image of one sample), ``tokens`` (one sample) or ``accuracy`` (a whole
    eval set: ``sample_id`` is its spec).

    ``metrics`` are what the verdict looked at; ``series`` are per-token / per-step vectors for the plots (vision:
    ``token_cosine``, ``grid``, ``image``, ``abs_err_histogram``; tokens: ``kl_per_step``, ``*_pieces``; accuracy:
    ``flips``, the questions whose correctness changed).
    """

    path: str
    check: str
    sample_id: str
    image_index: int | None
    passed: bool
    reasons: tuple[str, ...]
    metrics: dict[str, Any]
    series: dict[str, Any] = field(default_factory=dict)


@dataclass
class PathReport:
    name: str
    description: str
    checks: list[CheckResult] = field(default_factory=list)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    artefact_bytes: int | None = None
    tolerance_version: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # path-specific facts, e.g. the ORT provider audit
    memory: dict[str, dict[str, int | None]] = field(default_factory=dict)  # stage → summarise_memory()

    @property
    def passed(self) -> bool | None:
        """None when no check of this path ran (e.g. a pytest run selected other tests)."""
        return all(check.passed for check in self.checks) if self.checks else None

    def _of(self, kind: str) -> list[CheckResult]:
        return [check for check in self.checks if check.check == kind]

    def vision_summary(self) -> dict[str, Any]:
        checks = self._of("vision")
        return {
            "checks": len(checks),
            "failed": sum(not check.passed for check in checks),
            "max_abs_err": _worst(checks, "max_abs_err", max),
            "min_cosine": _worst(checks, "min_token_cosine", min),
            "max_rel_l2": _worst(checks, "rel_l2", max),
        }

    def tokens_summary(self) -> dict[str, Any]:
        checks = self._of("tokens")
        divergences = [c.metrics["first_divergence"] for c in checks if c.metrics["first_divergence"] is not None]
        return {
            "checks": len(checks),
            "failed": sum(not check.passed for check in checks),
            "exact": bool(checks) and all(check.metrics["exact"] for check in checks),
            "first_divergence": min(divergences) if divergences else None,
            "min_match_rate": _worst(checks, "match_rate", min),
            "kl_max": _worst(checks, "kl_max", max),
            "min_same_top1_rate": _worst(checks, "same_top1_rate", min),
            # what the gate judged: steps where the reference is settled (all steps where settled_p is 0)
            "settled_kl_max": _worst(checks, "settled_kl_max", max),
            "min_settled_same_top1_rate": _worst(checks, "settled_same_top1_rate", min),
            "ambiguous_steps": sum(check.metrics.get("ambiguous_steps") or 0 for check in checks),
            "kernel_max_abs_logit": _worst(checks, "kernel_max_abs_logit", max),
            "weight_max_rel_l2": _worst(checks, "weight_max_rel_l2", max),
        }

    def accuracy_summary(self) -> dict[str, Any] | None:
        """The task-accuracy check on the eval set (the last one, if several ran), or None when none ran."""
        checks = self._of("accuracy")
        if not checks:
            return None
        check = checks[-1]
        summary = {key: check.metrics.get(key) for key in ACCURACY_FIGURES}
        return {**summary, "flips": len(check.series.get("flips", [])), "passed": check.passed}


ACCURACY_FIGURES = (
    "eval_set", "n", "reference_accuracy", "candidate_accuracy", "delta", "ci_low", "ci_high", "drop", "mcnemar_p",
    "lost", "gained", "changed", "unanswered",
)  # fmt: skip


def _worst(checks: list[CheckResult], metric: str, pick: Any) -> float | None:
    """Worst value of ``metric``; NaN wins (it is the worst thing a metric can be)."""
    values = [check.metrics[metric] for check in checks if check.metrics.get(metric) is not None]
    if not values:
        return None
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return math.nan
    return pick(values)


def summarise_durations(seconds: list[float]) -> dict[str, float]:
    return {
        "count": len(seconds),
        "total": sum(seconds),
        "mean": statistics.fmean(seconds),
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
    }


def summarise_memory(peak_rss_bytes: list[int], cuda_peak_bytes: list[int | None]) -> dict[str, int | None]:
    """Highest memory seen at the end of a stage's runs. RSS is the process high-water mark (every path shares the
    process, so it is an upper bound); CUDA is the stage's own peak allocation, None off CUDA."""
    cuda = [value for value in cuda_peak_bytes if value is not None]
    return {
        "peak_rss_bytes": max(peak_rss_bytes) if peak_rss_bytes else None,
        "cuda_peak_bytes": max(cuda) if cuda else None,
    }


@dataclass
class ParityReport:
    model: str
    model_type: str
    device: str
    dtype: str
    reference: str
    versions: dict[str, str]
    paths: dict[str, PathReport] = field(default_factory=dict)
    provenance: Provenance | None = None  # when, where, from which commit; None for a report built by hand

    def tolerance_of(self, name: str) -> Tolerance | None:
        """The profile path ``name`` was judged by, read back from the tolerance file for this model's family; None
        for the reference, a path without a profile, or a report judged under another version of the file."""
        path = self.paths.get(name)
        profile = load_tolerances(model_type=self.model_type).get(name)
        if path is None or profile is None or path.tolerance_version != profile.version:
            return None
        return profile

    @property
    def candidates(self) -> list[PathReport]:
        return [report for name, report in self.paths.items() if name != self.reference]

    @property
    def passed(self) -> bool:
        """Every candidate path that ran passed, and at least one ran (nothing checked proves nothing)."""
        ran = [report for report in self.candidates if report.passed is not None]
        return bool(ran) and all(report.passed for report in ran)
