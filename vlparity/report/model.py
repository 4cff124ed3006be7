"""The parity report: every check of every path, aggregated per path. Built by the session, rendered elsewhere."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from vlparity.parity.tolerances import Tolerance, load_tolerances
from vlparity.provenance import Provenance

SCHEMA_VERSION = 6  # v2: per-check ``series`` (plot data) and per-path ``memory``; v3: ``limits``, ``warnings``;
# v4: ``accuracy`` checks (task accuracy on an eval set) and each path's ``accuracy`` summary; v5: ``tensors`` checks
# (the per-tensor error table of onnx-bf16 / onnx-qdq) and each path's ``tensors`` summary; v6: ``deepstack`` checks
# (each DeepStack level of Qwen3-VL, per image), each path's ``deepstack`` summary, ``series.output`` of vision checks


@dataclass(frozen=True)
class CheckResult:
    """One judged comparison: ``vision`` (one image of one sample), ``tokens`` (one sample), ``tensors`` (the
    per-tensor error table of one sample's vision graph against the fp32 graph it was derived from) or ``accuracy`` (a
    whole eval set: ``sample_id`` is its spec).

    ``metrics`` are what the verdict looked at; ``series`` are per-token / per-step vectors for the plots (vision:
    ``token_cosine``, ``grid``, ``image``, ``abs_err_histogram``; tokens: ``kl_per_step``, ``*_pieces``; tensors:
    ``worst_tensors``, ``worst_weights``, ``blocks``; accuracy: ``flips``, the questions whose correctness changed).
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

    def vision_summary(self, kind: str = "vision") -> dict[str, Any]:
        """The worst figures of the image-embedding checks (``kind`` ``deepstack``: of every DeepStack level's)."""
        checks = self._of(kind)
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

    def tensors_summary(self) -> dict[str, Any] | None:
        """The per-tensor error tables of the path's samples in short (None when no ``tensors`` check ran): the worst
        tensor and weight over all samples, and per location (patch_embed, block N, …, merger, tower) the minimum SQNR
        over the samples. NaN counts as the worst value, below −inf."""
        checks = self._of("tensors")
        if not checks:
            return None
        worst = worst_tensor_check(checks)
        tensor = _first(worst.series.get("worst_tensors")) or {
            "name": worst.metrics.get("worst_tensor"),
            "location": worst.metrics.get("worst_location"),
            "sqnr_db": worst.metrics.get("min_sqnr_db"),
        }
        weighed = min(checks, key=lambda check: (_sqnr_key(check.metrics.get("min_weight_sqnr_db")), check.sample_id))
        weight = _first(weighed.series.get("worst_weights")) or {
            "name": weighed.metrics.get("worst_weight"),
            "sqnr_db": weighed.metrics.get("min_weight_sqnr_db"),
        }
        return {
            "checks": len(checks),
            "failed": sum(not check.passed for check in checks),
            "tensors_compared": max(check.metrics.get("tensors_compared") or 0 for check in checks),
            "weights_compared": max(check.metrics.get("weights_compared") or 0 for check in checks),
            "min_sqnr_db": worst.metrics.get("min_sqnr_db"),
            "worst_tensor": _named(tensor, TENSOR_FIELDS, worst.sample_id),
            "min_weight_sqnr_db": weighed.metrics.get("min_weight_sqnr_db"),
            "worst_weight": _named(weight, WEIGHT_FIELDS, weighed.sample_id),
            "blocks": tensor_blocks(checks),
        }


TENSOR_FIELDS = ("name", "location", "scope", "sqnr_db", "rounding_sqnr_db", "cosine", "max_abs_err")
WEIGHT_FIELDS = ("name", "location", "sqnr_db", "max_abs_err")


def _first(rows: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return rows[0] if rows else None


def _named(row: dict[str, Any], keys: tuple[str, ...], sample: str) -> dict[str, Any] | None:
    """``keys`` of a table row and the sample it comes from; None when the row names nothing (nothing compared)."""
    return None if row.get("name") is None else {**{key: row.get(key) for key in keys}, "sample": sample}


def _sqnr_key(value: float | None) -> float:
    """Sort key of an SQNR, lowest (worst) first: NaN before −inf, a missing value (nothing compared) last."""
    if value is None:
        return math.inf
    return -math.inf if math.isnan(value) else value


def worst_tensor_check(checks: list[CheckResult]) -> CheckResult:
    """The sample whose table holds the lowest tensor SQNR (NaN lowest); on a tie a failing check, then the first
    sample id (the same answer whatever order the checks were recorded or merged in)."""
    return min(checks, key=lambda check: (_sqnr_key(check.metrics.get("min_sqnr_db")), check.passed, check.sample_id))


def tower_order(location: str) -> tuple[int, int]:
    """Sort key of a location as ``vlparity.parity.tensor_table`` orders its blocks: patch_embed, block 0, 1, …,
    merger, then anything else (tower)."""
    match = re.fullmatch(r"block (\d+)", location)
    if match:
        return 1, int(match.group(1))
    return {"patch_embed": (0, 0), "merger": (2, 0)}.get(location, (3, 0))


def tensor_blocks(checks: list[CheckResult]) -> list[dict[str, Any]]:
    """Per location in tower order, the minimum over the checks' ``series.blocks`` of the tensor SQNR (with that
    tensor and its sample; on a tie the first sample id) and of the weight SQNR (with that weight)."""
    merged: dict[str, dict[str, Any]] = {}
    for check in sorted(checks, key=lambda check: check.sample_id):
        for row in check.series.get("blocks", []):
            where = row["location"]
            seen = merged.setdefault(
                where,
                {
                    "location": where, "tensors": 0, "min_sqnr_db": None, "worst_tensor": None, "sample": None,
                    "min_weight_sqnr_db": None, "worst_weight": None,
                },
            )  # fmt: skip
            seen["tensors"] = max(seen["tensors"], row.get("tensors") or 0)
            if seen["sample"] is None or _sqnr_key(row.get("min_sqnr_db")) < _sqnr_key(seen["min_sqnr_db"]):
                seen |= {"min_sqnr_db": row.get("min_sqnr_db"), "worst_tensor": row.get("worst_tensor")}
                seen["sample"] = check.sample_id
            if _sqnr_key(row.get("min_weight_sqnr_db")) < _sqnr_key(seen["min_weight_sqnr_db"]):
                seen |= {"min_weight_sqnr_db": row["min_weight_sqnr_db"], "worst_weight": row.get("worst_weight")}
    return [merged[where] for where in sorted(merged, key=tower_order)]


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
