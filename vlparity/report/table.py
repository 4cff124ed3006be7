"""Terminal rendering: one row per (path, check) with the verdict and the worst judged figures."""

from __future__ import annotations

from vlparity.report.model import ParityReport
from vlparity.report.views import (
    accuracy_gates,
    accuracy_summary,
    answers,
    flipped_answers,
    report_warnings,
    tensor_gates,
    token_gates,
    tolerance_label,
    vision_gates,
)


def render_table(report: ParityReport) -> str:
    """Each row's ``judged/limit`` column shows the worst figure the verdict judged next to the profile's limit (a
    ``tensors`` row: the lowest tensor and weight SQNR against the fp32 graph, and where). The verdict comes before it:
    that column is long (a token row names every gate), the verdict must not scroll away."""
    header = ("path", "check", "n", "failed", "verdict", "worst judged/limit")
    rows = []
    for path in report.candidates:
        tokens = path.tokens_summary()
        for kind in ("vision", "deepstack"):
            vision = path.vision_summary(kind)
            if vision["checks"]:
                worst = "  ".join(str(gate) for gate in vision_gates(report, path, kind))
                rows.append((path.name, kind, vision["checks"], vision["failed"], worst, vision["failed"] == 0))
        tensors = path.tensors_summary()
        if tensors is not None:
            worst = "  ".join(str(gate) for gate in tensor_gates(report, path))
            rows.append((path.name, "tensors", tensors["checks"], tensors["failed"], worst, tensors["failed"] == 0))
        if tokens["checks"]:
            worst = "  ".join(str(gate) for gate in token_gates(report, path))
            rows.append((path.name, "tokens", tokens["checks"], tokens["failed"], worst, tokens["failed"] == 0))
        accuracy = path.accuracy_summary()
        if accuracy is not None:
            worst = "  ".join(str(gate) for gate in accuracy_gates(report, path))
            passed = accuracy["passed"]
            rows.append((path.name, "accuracy", accuracy["n"], int(not passed), worst, passed))
        if not path.checks:
            rows.append((path.name, "-", 0, 0, "no checks ran", None))
    verdicts = {True: "PASS", False: "FAIL", None: "not run"}
    cells = [header] + [(p, c, str(n), str(f), verdicts[ok], w) for p, c, n, f, w, ok in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    tolerances = tolerance_label(report)
    lines = [
        f"vlparity: {report.model} ({report.model_type}) on {report.device}/{report.dtype} vs {report.reference}"
        + (f", {tolerances}" if tolerances else "")
    ]
    for index, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    failures = [check for path in report.candidates for check in path.checks if not check.passed]
    for check in failures[:20]:
        lines.append(
            f"FAIL {check.path} {check.check} [{check.sample_id}"
            f"{'' if check.image_index is None else f' image {check.image_index}'}]: " + "; ".join(check.reasons)
        )
    if len(failures) > 20:
        lines.append(f"… and {len(failures) - 20} more failing checks (see the JSON report)")
    lines.extend(f"WARN {warning}" for warning in report_warnings(report))
    lines.extend(render_answers(report))
    lines.extend(render_flips(report))
    lines.append(f"overall: {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)


def render_answers(report: ParityReport, limit: int = 12) -> list[str]:
    """What each path answered, per sample: ``=`` where a path said exactly what ``original`` said."""
    rows = answers(report)
    if not rows:
        return []
    lines = ["answers (= same tokens as original):"]
    for sample_id, row in list(rows.items())[:limit]:
        reference = row.pop(report.reference)
        others = "  ".join(f"{name} {'=' if text is None else repr(text)}" for name, text in row.items())
        lines.append(f"  {sample_id}: {report.reference} {reference!r}  {others}")
    if len(rows) > limit:
        lines.append(f"  … {len(rows) - limit} more samples in the JSON report")
    return lines


def render_flips(report: ParityReport, limit: int = 10) -> list[str]:
    """The eval set's flipped answers (correct on one side only), first ``limit`` of them."""
    reference = accuracy_summary(report, report.reference)
    if reference is None:
        return []
    rows = flipped_answers(report)
    lines = [
        f"eval set {reference['eval_set']}: {report.reference} {reference['accuracy']:.1%} on {reference['n']} "
        f"questions; {len(rows)} flipped answer(s)" + (":" if rows else "")
    ]
    for path, direction, image, question, answer, said, candidate_said in rows[:limit]:
        lines.append(
            f"  {path} {direction} [{image}] {question!r} answer {answer!r}: {report.reference} {said!r}, "
            f"{path} {candidate_said!r}"
        )
    if len(rows) > limit:
        lines.append(f"  … {len(rows) - limit} more in the JSON, Markdown or HTML report")
    return lines
