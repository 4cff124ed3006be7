"""What every rendering shows the same way: number formatting, each judged figure next to its limit (``Gate``), the
warnings about a degenerate reference, and the per-sample answers of each path."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from vlparity.parity.tolerances import Tolerance
from vlparity.report.model import ParityReport, PathReport, worst_tensor_check
from vlparity.runtime.vitisai import describe_cpu_ops


def fmt(value: object) -> str:
    """Compact, human-readable: 3 significant digits, ``-`` for missing, yes/no for booleans."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def fmt_cosine(value: float | None) -> str:
    """Cosines to 7 significant digits (0.9999998 next to a 0.99999 limit): "1" would hide the difference between
    fp32 and int8, while bit-exact embeddings (1 − 2.2e-16 after float64 rounding) still read 1."""
    return fmt(value) if value is None or math.isnan(value) else f"{value:.7g}"


def fmt_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def overall(report: ParityReport) -> bool | None:
    """The run's verdict, or None when no check ran at all (the report then proves nothing either way)."""
    return report.passed if any(path.passed is not None for path in report.candidates) else None


def tolerance_label(report: ParityReport) -> str:
    """``tolerances v3``: the tolerance file version(s) the candidate paths were judged by ("" if none recorded)."""
    versions = sorted({path.tolerance_version for path in report.candidates if path.tolerance_version is not None})
    return f"tolerances v{'/'.join(map(str, versions))}" if versions else ""


def tolerance_limits(report: ParityReport, name: str) -> dict[str, Any] | None:
    """The tolerance profile path ``name`` was judged by (every key of tolerances.toml), or None (the reference, a
    path without a profile, a report judged under another version of the file)."""
    tolerance = report.tolerance_of(name)
    return asdict(tolerance) if tolerance is not None else None


def fmt_limit(value: object) -> str:
    """A limit exactly as the file sets it (0.99999 must not read 1), ``∞`` where a maximum is off, ``−∞`` where a
    minimum is (``tensor_min_sqnr_db`` of a path without a per-tensor table)."""
    if isinstance(value, float):
        return ("∞" if value > 0 else "−∞") if math.isinf(value) else f"{value:.10g}"
    return str(value)


def fmt_db(value: float | None) -> str:
    """An SQNR in dB to 0.1 dB: ``∞`` for an identical tensor, ``−∞`` for a NaN or a shape mismatch, ``-`` where
    nothing was measured (e.g. the own rounding of a tensor the derived graph does not round)."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.1f}"


TOLERANCE_KEYS = ("version", *(f.name for f in fields(Tolerance) if f.name != "version"))


def tolerance_table(report: ParityReport) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Candidate paths (columns) and one row per tolerance key with each path's limit (``-``: no profile for that
    path in this tolerance file); no columns when no candidate has one."""
    limits = {path.name: tolerance_limits(report, path.name) for path in report.candidates}
    limits = {name: profile for name, profile in limits.items() if profile is not None}
    if not limits:
        return [], []
    rows = [(key, [fmt_limit(profile[key]) for profile in limits.values()]) for key in TOLERANCE_KEYS]
    return list(limits), rows


def provenance_facts(report: ParityReport) -> list[tuple[str, str]]:
    """When, where and from which vlparity commit the run was made ([] for a report without provenance)."""
    provenance = report.provenance
    if provenance is None:
        return []
    commit = "not a git checkout" if provenance.commit is None else provenance.commit
    if provenance.dirty:
        commit += " (with uncommitted changes)"
    return [
        ("time (UTC)", provenance.timestamp),
        ("host", provenance.host),
        ("platform", provenance.platform),
        ("CPU", provenance.cpu or "unknown"),
        ("vlparity commit", commit),
    ]


def provenance_line(report: ParityReport) -> str:
    """One line for a page's header: ``2026-12-01T02:30:00Z on host, vlparity 0.1.0 at 1a2b3c4d5e6f``."""
    provenance = report.provenance
    if provenance is None:
        return ""
    version = report.versions.get("vlparity", "?")
    if provenance.commit is None:
        source = f"vlparity {version}"
    else:
        source = f"vlparity {version} at {provenance.commit[:12]}" + (" (modified)" if provenance.dirty else "")
    return f"run {provenance.timestamp} on {provenance.host}, {source}"


def answers(report: ParityReport) -> dict[str, dict[str, str | None]]:
    """sample → {reference: its text, candidate: its text, or None where it produced the reference's very tokens}."""
    rows: dict[str, dict[str, str | None]] = {}
    for path in report.candidates:
        for check in path.checks:
            if check.check == "tokens":
                row = rows.setdefault(check.sample_id, {report.reference: check.metrics["reference_text"]})
                same = check.metrics["candidate_tokens"] == check.metrics["reference_tokens"]
                row[path.name] = None if same else check.metrics["candidate_text"]
    return rows


@dataclass(frozen=True)
class Gate:
    """One gated figure of a path next to its limit, as every rendering shows it: ``KL 0.0008/0.01 (settled steps)``.

    ``value`` is the worst figure the verdict judged (for token checks: over the settled steps), ``limit`` the profile's
    (None: unknown, e.g. a report judged under another tolerance version; inf: the profile sets no limit)."""

    label: str
    value: str
    limit: str | None
    note: str = ""

    def __str__(self) -> str:
        figure = self.value if self.limit is None else f"{self.value}/{self.limit}"
        return f"{self.label} {figure}" + (f" ({self.note})" if self.note else "")

    @property
    def cell(self) -> str:
        """The figure without its label, for a table column named after it."""
        return str(self).removeprefix(f"{self.label} ")


def _limit(value: float | None) -> str | None:
    return None if value is None else fmt_limit(value)


def vision_gates(report: ParityReport, path: PathReport, kind: str = "vision") -> list[Gate]:
    """The worst max |Δ|, per-token cosine and relative L2 error of the path's image embeddings (``kind``
    ``deepstack``: of its DeepStack features, every level), each with its limit."""
    summary, tolerance = path.vision_summary(kind), report.tolerance_of(path.name)
    atol, rtol = (tolerance.vision_atol, tolerance.vision_rtol) if tolerance else (None, 0.0)
    return [
        Gate("max|Δ|", fmt(summary["max_abs_err"]), _limit(atol), f"or ≤ {rtol:g}·|reference|" if rtol else ""),
        Gate(
            "min cos",
            fmt_cosine(summary["min_cosine"]),
            _limit(tolerance.vision_min_cosine if tolerance else None),
        ),
        Gate("rel L2", fmt(summary["max_rel_l2"]), _limit(tolerance.vision_max_rel_l2 if tolerance else None)),
    ]


def token_gates(report: ParityReport, path: PathReport) -> list[Gate]:
    """Tokens under the path's rule, the teacher-forced KL and same-top-1 rate the gate judged (settled steps where the
    profile has ``settled_p``, with the all-steps figure beside them) and, for quantized paths, the kernel error and the
    worst linear's weight error."""
    summary, tolerance = path.tokens_summary(), report.tolerance_of(path.name)
    rule = "" if tolerance is None else "rule exact" if tolerance.tokens == "exact" else f"rule top-{tolerance.top_k}"
    settled_p, ambiguous = tolerance.settled_p if tolerance else 0.0, summary["ambiguous_steps"]
    kl_note = f"settled steps, p ≥ {settled_p:g}, {ambiguous} ambiguous" if settled_p else ""
    top1_note = "settled steps" if settled_p else ""
    kl, all_kl = fmt(summary["settled_kl_max"]), fmt(summary["kl_max"])
    top1, all_top1 = fmt(summary["min_settled_same_top1_rate"]), fmt(summary["min_same_top1_rate"])
    if settled_p and all_kl != kl:  # an ambiguous step holds the largest KL: show it beside the judged one
        kl_note += f"; all steps {all_kl}"
    if settled_p and all_top1 != top1:
        top1_note += f"; all steps {all_top1}"
    gates = [
        Gate("exact", fmt(summary["exact"]), None, rule),
        Gate("1st div", fmt(summary["first_divergence"]), None),
        Gate("KL", kl, _limit(tolerance.kl_max if tolerance else None), kl_note),
        Gate("top1", top1, _limit(tolerance.same_top1_min if tolerance else None), top1_note),
    ]
    if tolerance is not None and math.isfinite(tolerance.kernel_max_abs_logit):
        gates.append(
            Gate("kernel |Δlogit|", fmt(summary["kernel_max_abs_logit"]), _limit(tolerance.kernel_max_abs_logit))
        )
    if tolerance is not None and math.isfinite(tolerance.weight_max_rel_l2):
        gates.append(Gate("weight rel L2", fmt(summary["weight_max_rel_l2"]), _limit(tolerance.weight_max_rel_l2)))
    return gates


def _db_limit(value: float | None) -> str | None:
    return None if value is None else f"{fmt_limit(value)} dB"


def tensor_gates(report: ParityReport, path: PathReport) -> list[Gate]:
    """The lowest SQNR of any tensor and of any weight of the path's derived vision graph against the fp32 graph (over
    every sample), each with its limit and where it is: ``min tensor SQNR 15.2 dB/0 dB (block 1: val_402)``. [] when
    the path ran no ``tensors`` check."""
    summary, tolerance = path.tensors_summary(), report.tolerance_of(path.name)
    if summary is None:
        return []
    tensor, weight = summary["worst_tensor"], summary["worst_weight"]
    return [
        Gate(
            "min tensor SQNR",
            f"{fmt_db(summary['min_sqnr_db'])} dB",
            _db_limit(tolerance.tensor_min_sqnr_db if tolerance else None),
            f"{tensor['location']}: {tensor['name']}" if tensor else "",
        ),
        Gate(
            "min weight SQNR",
            f"{fmt_db(summary['min_weight_sqnr_db'])} dB",
            _db_limit(tolerance.weight_min_sqnr_db if tolerance else None),
            f"{weight['location']}: {weight['name']}" if weight else "",
        ),
    ]


SUMMARY_COLUMNS = {  # gate label → column header of the Markdown and HTML summaries
    "max|Δ|": "max |Δ|/atol", "min cos": "min cosine/limit", "rel L2": "rel L2/limit", "exact": "exact",
    "1st div": "1st divergence", "KL": "KL/limit", "top1": "same top-1/limit",
    "kernel |Δlogit|": "kernel |Δlogit|/limit", "weight rel L2": "weight rel L2/limit",
}  # fmt: skip
TENSOR_SUMMARY_COLUMNS = {"min tensor SQNR": "min tensor SQNR/limit", "min weight SQNR": "min weight SQNR/limit"}


def has_tensor_tables(report: ParityReport) -> bool:
    """Whether any candidate ran a ``tensors`` check: only then do the summaries get its columns."""
    return any(path.tensors_summary() is not None for path in report.candidates)


def check_counts(summary: dict[str, Any]) -> str:
    """A summary table cell: checks (failed)."""
    return f"{summary['checks']} ({summary['failed']})"


def has_deepstack(report: ParityReport) -> bool:
    """Whether any candidate's DeepStack features were judged (Qwen3-VL): only then do the summaries get a column."""
    return any(path.vision_summary("deepstack")["checks"] for path in report.candidates)


def summary_columns(report: ParityReport) -> dict[str, str]:
    """``SUMMARY_COLUMNS``, then the per-tensor table's two gates when some path has one (a report without any keeps
    its columns as they were)."""
    return {**SUMMARY_COLUMNS, **(TENSOR_SUMMARY_COLUMNS if has_tensor_tables(report) else {})}


def summary_cells(report: ParityReport, path: PathReport) -> list[str]:
    """The cells under ``summary_columns(report)`` (Markdown and HTML summaries): each judged figure with its limit,
    ``-`` where the path ran no such check or its profile has no such limit."""
    gates = vision_gates(report, path) if path.vision_summary()["checks"] else []
    gates += token_gates(report, path) if path.tokens_summary()["checks"] else []
    gates += tensor_gates(report, path)
    cells = {gate.label: gate.cell for gate in gates}
    return [cells.get(label, "-") for label in summary_columns(report)]


REPEAT_RUN = 4  # a reference answer that repeats one token this many times in a row, over half its length, is a loop


def reference_warnings(report: ParityReport) -> list[str]:
    """What makes token parity on this run say little, read from the token checks' ``reference_tokens``/``_text``
    (not judged: a warning, never a failure). A reference that loops on one token or answers nothing is degenerate,
    and one that gives every sample the same answer ignores its input: any candidate that does the same "passes"."""
    references: dict[str, tuple[list[int], str]] = {}
    for path in report.candidates:
        for check in path.checks:
            if check.check == "tokens" and "reference_tokens" in check.metrics:
                references.setdefault(
                    check.sample_id, (check.metrics["reference_tokens"], check.metrics["reference_text"])
                )
    warnings = []
    for sample_id, (tokens, text) in references.items():
        run, token = _longest_run(tokens)
        if run >= REPEAT_RUN and 2 * run > len(tokens):
            warnings.append(
                f"degenerate reference on {sample_id}: token {token} repeated {run} times in a row ({len(tokens)} "
                "generated); a looping reference makes token parity meaningless"
            )
        elif not text.strip():
            warnings.append(f"degenerate reference on {sample_id}: an empty answer (no text in {len(tokens)} token(s))")
    answers_given = {tuple(tokens) for tokens, _ in references.values()}
    if len(references) > 1 and len(answers_given) == 1:
        text = next(iter(references.values()))[1]
        warnings.append(
            f"degenerate reference: every sample ({len(references)}) gets the same answer {text!r}; the reference "
            "ignores its input, so agreeing with it proves little (a trained checkpoint and distinct images help)"
        )
    return warnings


def generation_config_warnings(report: ParityReport) -> list[str]:
    """Generation-config fields a path's artefact changes that do not change greedy tokens (e.g. ``temperature`` while
    both sides decode greedily, ``pad_token_id``): a deployment reading that file may still behave differently."""
    return [
        f"{path.name}: {warning}"
        for path in report.candidates
        for warning in path.details.get("generation_config", {}).get("warns", [])
    ]


def placement_warnings(report: ParityReport) -> list[str]:
    """VitisAI operators placed on the CPU within ``--max-npu-fallback``: the run passes, but not all of it was NPU."""
    warnings = []
    for path in report.candidates:
        placement = (path.details.get("provider_audit") or {}).get("placement")
        if not placement or not placement.get("ops_off_npu"):
            continue
        gops = placement.get("gops_off_npu")
        warnings.append(
            f"{path.name}: VitisAI placed {placement['ops_off_npu']:.1%} of the operators"
            + ("" if gops is None else f" ({gops:.1%} of the GOPs)")
            + f" off the NPU (limit {placement['max_npu_fallback']:g}); on the CPU: "
            + describe_cpu_ops(placement.get("cpu_op_types", {}))
        )
    return warnings


def report_warnings(report: ParityReport) -> list[str]:
    """Everything the run warns about without failing it, in every rendering."""
    return [*reference_warnings(report), *generation_config_warnings(report), *placement_warnings(report)]


def _longest_run(tokens: list[int]) -> tuple[int, int | None]:
    """Length and token of the longest run of one repeated token."""
    best, token, run = 0, None, 0
    for index, current in enumerate(tokens):
        run = run + 1 if index and tokens[index - 1] == current else 1
        if run > best:
            best, token = run, current
    return best, token


# --- task accuracy on an eval set (--eval-set) ------------------------------------------------------------------------


def accuracy_summary(report: ParityReport, name: str) -> dict[str, Any] | None:
    """Path ``name``'s accuracy check in short (None when no eval set was scored). The reference has no check of its
    own: its accuracy is read from a candidate's (every candidate is compared with the same answers)."""
    path = report.paths.get(name)
    if path is None:
        return None
    if name != report.reference:
        summary = path.accuracy_summary()
        return None if summary is None else {"accuracy": summary.pop("candidate_accuracy"), **summary}
    scored = [summary for candidate in report.candidates if (summary := candidate.accuracy_summary()) is not None]
    if not scored:
        return None
    first = scored[0]
    return {"eval_set": first["eval_set"], "n": first["n"], "accuracy": first["reference_accuracy"]}


def fmt_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def accuracy_gates(report: ParityReport, path: PathReport) -> list[Gate]:
    """The path's accuracy beside original's, the paired delta with its 95 % CI and McNemar's p, and the gated drop
    next to ``max_accuracy_drop``."""
    summary, tolerance = path.accuracy_summary(), report.tolerance_of(path.name)
    if summary is None:
        return []
    return [
        Gate(
            "acc",
            fmt_percent(summary["candidate_accuracy"]),
            None,
            f"original {fmt_percent(summary['reference_accuracy'])}",
        ),
        Gate("Δ", f"{summary['delta']:+.3f}", None, f"95 % CI [{summary['ci_low']:+.3f}, {summary['ci_high']:+.3f}]"),
        Gate("drop", fmt(summary["drop"]), _limit(tolerance.max_accuracy_drop if tolerance else None)),
        Gate("lost/gained", f"{summary['lost']}/{summary['gained']}", None),
        Gate("McNemar p", fmt(summary["mcnemar_p"]), None),
    ]


ACCURACY_COLUMNS = (
    "path",
    "accuracy",
    "Δ vs reference",
    "95 % CI",
    "McNemar p",
    "lost/gained",
    "drop/limit",
    "verdict",
)


def accuracy_rows(report: ParityReport) -> tuple[str, list[tuple[list[str], bool | None]]]:
    """The eval set's name and one row per path under ``ACCURACY_COLUMNS`` (the reference first, its verdict None):
    cells as text, plus the path's accuracy verdict. ("", []) when no eval set was scored."""
    reference = accuracy_summary(report, report.reference)
    if reference is None:
        return "", []
    rows: list[tuple[list[str], bool | None]] = [
        ([report.reference, fmt_percent(reference["accuracy"]), "-", "-", "-", "-", "-", "reference"], None)
    ]
    for path in report.candidates:
        summary = path.accuracy_summary()
        if summary is None:
            continue
        gates = {gate.label: gate for gate in accuracy_gates(report, path)}
        cells = [
            path.name,
            fmt_percent(summary["candidate_accuracy"]),
            f"{summary['delta']:+.3f}",
            f"[{summary['ci_low']:+.3f}, {summary['ci_high']:+.3f}]",
            fmt(summary["mcnemar_p"]),
            f"{summary['lost']}/{summary['gained']}",
            gates["drop"].cell,
            "PASS" if summary["passed"] else "FAIL",
        ]
        rows.append((cells, summary["passed"]))
    return f"{reference['eval_set']} ({reference['n']} questions)", rows


FLIP_COLUMNS = ("path", "flip", "image", "question", "answer", "reference said", "path said")


def flipped_answers(report: ParityReport) -> list[list[str]]:
    """Every flipped answer of every path under ``FLIP_COLUMNS``: ``lost`` (the reference was right, the path is
    wrong) or ``gained``, with the image named, the eval set's answer and both paths' texts."""
    rows = []
    for path in report.candidates:
        for check in path.checks:
            if check.check == "accuracy":
                for flip in check.series.get("flips", []):
                    image = flip["image"] + (f" ({flip['source']})" if flip.get("source") else "")
                    rows.append(
                        [path.name, flip["direction"], image, flip["question"], flip["answer"], flip["reference"],
                         flip["candidate"]]
                    )  # fmt: skip
    return rows


# --- per-tensor error table of a derived vision graph (onnx-bf16, onnx-qdq: ``tensors`` checks) -----------------------


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, whether it is a figure (right-aligned), and whether it fails its limit."""

    text: str
    numeric: bool = False
    failed: bool = False


TENSOR_BLOCK_COLUMNS = (
    "location", "tensors", "min SQNR (dB)", "worst tensor", "sample", "min weight SQNR (dB)", "worst weight",
)  # fmt: skip
WORST_TENSOR_COLUMNS = (
    "tensor", "location", "scope", "SQNR vs fp32 (dB)", "own rounding SQNR (dB)", "cosine", "max |Δ|",
)  # fmt: skip


@dataclass(frozen=True)
class TensorSection:
    """What the Markdown and HTML reports show of one path's per-tensor error tables: the facts line, the per-location
    minimum over every sample (``TENSOR_BLOCK_COLUMNS``), and the worst tensors of the worst sample
    (``WORST_TENSOR_COLUMNS``). Cells under a limit are marked failed."""

    path: str
    passed: bool
    facts: str
    blocks: list[list[Cell]]
    worst_sample: str
    worst_passed: bool
    worst: list[list[Cell]]


def _below(value: float | None, limit: float | None) -> bool:
    """``value`` fails a minimum ``limit`` as the verdict judges it (NaN fails); unknown limit or value: not marked."""
    return limit is not None and value is not None and not value >= limit


def tensor_sections(report: ParityReport) -> list[TensorSection]:
    """One section per candidate path that ran ``tensors`` checks, in path order ([] when none did)."""
    sections = []
    for path in report.candidates:
        summary = path.tensors_summary()
        if summary is None:
            continue
        tolerance = report.tolerance_of(path.name)
        tensor_limit = tolerance.tensor_min_sqnr_db if tolerance else None
        weight_limit = tolerance.weight_min_sqnr_db if tolerance else None
        limits = (
            "limits unknown (judged under another tolerance version)"
            if tolerance is None
            else f"limits: tensor_min_sqnr_db {fmt_limit(tensor_limit)} dB, weight_min_sqnr_db "
            f"{fmt_limit(weight_limit)} dB"
        )
        facts = (
            f"{summary['checks']} sample(s), {summary['failed']} failed; {summary['tensors_compared']} tensors and "
            f"{summary['weights_compared']} changed weights compared with the fp32 graph; {limits}"
        )
        blocks = [
            [
                Cell(row["location"]),
                Cell(fmt(row["tensors"]), numeric=True),
                Cell(fmt_db(row["min_sqnr_db"]), True, _below(row["min_sqnr_db"], tensor_limit)),
                Cell(row["worst_tensor"] or "-"),
                Cell(row["sample"]),
                Cell(fmt_db(row["min_weight_sqnr_db"]), True, _below(row["min_weight_sqnr_db"], weight_limit)),
                Cell(row["worst_weight"] or "-"),
            ]
            for row in summary["blocks"]
        ]
        worst = worst_tensor_check([check for check in path.checks if check.check == "tensors"])
        rows = [
            [
                Cell(row["name"]),
                Cell(row["location"]),
                Cell(row.get("scope") or "-"),
                Cell(fmt_db(row["sqnr_db"]), True, _below(row["sqnr_db"], tensor_limit)),
                Cell(fmt_db(row.get("rounding_sqnr_db")), numeric=True),
                Cell(fmt_cosine(row.get("cosine")), numeric=True),
                Cell(fmt(row.get("max_abs_err")), numeric=True),
            ]
            for row in worst.series.get("worst_tensors", [])
        ]
        passed = summary["failed"] == 0
        sections.append(TensorSection(path.name, passed, facts, blocks, worst.sample_id, worst.passed, rows))
    return sections
