"""Markdown rendering (GitHub-flavoured): what a CI job summary (``$GITHUB_STEP_SUMMARY``) shows of a run."""

from __future__ import annotations

import html
import re

from vlparity.report.model import CheckResult, ParityReport
from vlparity.report.views import (
    ACCURACY_COLUMNS,
    FLIP_COLUMNS,
    TENSOR_BLOCK_COLUMNS,
    WORST_TENSOR_COLUMNS,
    Cell,
    accuracy_rows,
    answers,
    check_counts,
    flipped_answers,
    has_deepstack,
    has_tensor_tables,
    overall,
    provenance_facts,
    provenance_line,
    report_warnings,
    summary_cells,
    summary_columns,
    tensor_sections,
    tolerance_label,
    tolerance_table,
)

MAX_FAILURES = 30
MAX_ANSWERS = 30
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|#~])")


def md_text(value: object) -> str:
    """Inert Markdown for untrusted text (prompts, answers, reasons): HTML and Markdown syntax escaped, one line."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _verdict(passed: bool | None) -> str:
    return {True: "✅ PASS", False: "❌ FAIL", None: "no check ran"}[passed]


def _where(check: CheckResult) -> str:
    image = "" if check.image_index is None else f" image {check.image_index}"
    return f"{md_text(check.sample_id)}{image}"


def render_markdown(report: ParityReport) -> str:
    """Summary table per path (each judged figure next to its limit), the failing checks with their reasons, warnings
    about the reference, what each path answered, the per-tensor error table of each derived vision graph, every
    tolerance profile, and the run's provenance and versions."""
    columns, tensors, deepstack = summary_columns(report), has_tensor_tables(report), has_deepstack(report)
    lines = [
        f"## vlparity parity report: {_verdict(overall(report))}",
        "",
        f"{md_text(report.model)} ({md_text(report.model_type)}) on {md_text(report.device)}/{md_text(report.dtype)}, "
        f"reference path: {md_text(report.reference)}"
        + (f", {md_text(tolerance_label(report))}" if tolerance_label(report) else "")
        + (f"; {md_text(provenance_line(report))}" if provenance_line(report) else ""),
        "",
        "| path | vision checks (failed) | "
        + ("DeepStack checks (failed) | " if deepstack else "")
        + "token checks (failed) | "
        + ("tensor checks (failed) | " if tensors else "")
        + " | ".join(md_text(column) for column in columns.values())
        + " | verdict |",
        "| --- " * (len(columns) + 4 + tensors + deepstack) + "|",
    ]
    for path in report.candidates:
        vision, tokens, table = path.vision_summary(), path.tokens_summary(), path.tensors_summary()
        cells = [
            md_text(path.name),
            f"{vision['checks']} ({vision['failed']})",
            *([check_counts(path.vision_summary("deepstack"))] if deepstack else []),
            f"{tokens['checks']} ({tokens['failed']})",
            *([f"{table['checks']} ({table['failed']})" if table else "-"] if tensors else []),
            *(md_text(cell) for cell in summary_cells(report, path)),
            _verdict(path.passed),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.extend(_accuracy(report))
    lines.extend(_failures(report))
    lines.extend(_warnings(report))
    lines.extend(_answers(report))
    lines.extend(_tensor_tables(report))
    lines.extend(_tolerances(report))
    lines.extend(_provenance(report))
    return "\n".join(lines) + "\n"


def _accuracy(report: ParityReport) -> list[str]:
    """Accuracy per path on the eval set, the paired delta against the reference with its 95 % CI, and the flips."""
    name, rows = accuracy_rows(report)
    if not rows:
        return []
    lines = [
        "",
        f"### Task accuracy on {md_text(name)}",
        "",
        "| " + " | ".join(md_text(column) for column in ACCURACY_COLUMNS) + " |",
        "| --- " * len(ACCURACY_COLUMNS) + "|",
    ]
    for cells, passed in rows:
        verdict = "reference" if passed is None else _verdict(passed)
        lines.append("| " + " | ".join([*(md_text(cell) for cell in cells[:-1]), verdict]) + " |")
    lines.append(
        "\nΔ: accuracy(path) − accuracy(reference) on the same questions; 95 % CI: Newcombe's paired score interval; "
        "the gate is on the drop (−Δ) against `max_accuracy_drop`."
    )
    flips = flipped_answers(report)
    if flips:
        lines += ["", f"#### Flipped answers ({len(flips)})", ""]
        lines.append("| " + " | ".join(md_text(column) for column in FLIP_COLUMNS) + " |")
        lines.append("| --- " * len(FLIP_COLUMNS) + "|")
        lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in flips[:MAX_ANSWERS]]
        if len(flips) > MAX_ANSWERS:
            lines.append(f"\n… {len(flips) - MAX_ANSWERS} more in the JSON or HTML report")
    return lines


def _failures(report: ParityReport) -> list[str]:
    failures = [check for path in report.candidates for check in path.checks if not check.passed]
    if not failures:
        return []
    lines = ["", f"### Failing checks ({len(failures)})", ""]
    for check in failures[:MAX_FAILURES]:
        reasons = "; ".join(md_text(reason) for reason in check.reasons) or "no reason recorded"
        lines.append(f"- **{md_text(check.path)}** {check.check} [{_where(check)}]: {reasons}")
    if len(failures) > MAX_FAILURES:
        lines.append(f"- … and {len(failures) - MAX_FAILURES} more (see the JSON or HTML report)")
    return lines


def _warnings(report: ParityReport) -> list[str]:
    warnings = report_warnings(report)
    if not warnings:
        return []
    return ["", f"### ⚠️ Warnings ({len(warnings)})", "", *(f"- {md_text(warning)}" for warning in warnings)]


def _answers(report: ParityReport) -> list[str]:
    rows = answers(report)
    if not rows:
        return []
    names = [path.name for path in report.candidates if any(c.check == "tokens" for c in path.checks)]
    lines = [
        "",
        f"### Answers (= same tokens as {md_text(report.reference)})",
        "",
        "| sample | " + " | ".join(md_text(name) for name in [report.reference, *names]) + " |",
        "| --- " * (len(names) + 2) + "|",
    ]
    for sample_id, row in list(rows.items())[:MAX_ANSWERS]:
        cells = [md_text(sample_id), _answer(row[report.reference])]
        cells += ["-" if name not in row else "=" if row[name] is None else _answer(row[name]) for name in names]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > MAX_ANSWERS:
        lines.append(f"\n… {len(rows) - MAX_ANSWERS} more samples in the JSON or HTML report")
    return lines


def _answer(text: str | None) -> str:
    return md_text(text) if text else "(empty)"


def _cell(cell: Cell) -> str:
    """A table cell as text, ❌ before a figure under its limit (as failing verdicts are marked)."""
    return f"❌ {md_text(cell.text)}" if cell.failed else md_text(cell.text)


def _rows(columns: tuple[str, ...], rows: list[list[Cell]]) -> list[str]:
    lines = ["| " + " | ".join(md_text(column) for column in columns) + " |", "| --- " * len(columns) + "|"]
    return lines + ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]


def _tensor_tables(report: ParityReport) -> list[str]:
    """Per path with ``tensors`` checks (onnx-bf16, onnx-qdq): each location's lowest SQNR against the fp32 graph over
    every sample, and the worst tensors of the worst sample."""
    lines = []
    for section in tensor_sections(report):
        lines += [
            "",
            f"### Per-tensor error table: {md_text(section.path)} ({_verdict(section.passed)})",
            "",
            f"{md_text(section.facts)}. SQNR = 20·log10(‖fp32‖ / ‖{md_text(section.path)} − fp32‖) per tensor, higher "
            "is better; ∞: identical, −∞: NaN or a shape mismatch; ❌: under the limit.",
            "",
            "Lowest SQNR per location over every sample:",
            "",
            *_rows(TENSOR_BLOCK_COLUMNS, section.blocks),
        ]
        if section.worst:
            lines += [
                "",
                f"Worst tensors of the worst sample, {md_text(section.worst_sample)} "
                f"({_verdict(section.worst_passed)}); own rounding: the tensor against itself before its Q/DQ pair "
                "or bf16 cast (-: not rounded):",
                "",
                *_rows(WORST_TENSOR_COLUMNS, section.worst),
            ]
    return lines


def _tolerances(report: ParityReport) -> list[str]:
    names, rows = tolerance_table(report)
    if not names:
        return []
    lines = ["", "### Tolerance profiles (∞, −∞: off)", "", "| key | " + " | ".join(md_text(n) for n in names) + " |"]
    lines.append("| --- " * (len(names) + 1) + "|")
    lines += ["| " + " | ".join(md_text(cell) for cell in [key, *cells]) + " |" for key, cells in rows]
    return lines


def _provenance(report: ParityReport) -> list[str]:
    facts = [*provenance_facts(report), *report.versions.items()]
    if not facts:
        return []
    lines = ["", "### Provenance and library versions", "", "| | |", "| --- | --- |"]
    return lines + [f"| {md_text(key)} | {md_text(value)} |" for key, value in facts]
