"""HTML rendering: one self-contained file (inline CSS, SVG plots, base64 thumbnails, no URL) to open anywhere.

Sections: summary, task accuracy on the eval set (with the flipped answers), failing checks, answers, |Δ| histograms
per path, token-cosine heat maps beside the images, the per-tensor error table of each derived vision graph (onnx-bf16,
onnx-qdq), token divergence timelines, latency and memory, tolerance profiles, path details, provenance (when, where,
which commit and library versions; also one line in the header). Plots are drawn in ``svg.py``; this module lays out
the page.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from vlparity.report.model import CheckResult, ParityReport, PathReport
from vlparity.report.svg import (
    bars_svg,
    heat_legend_svg,
    heatmap_svg,
    histogram_svg,
    merge_histograms,
    timeline_svg,
)
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
    fmt_bytes,
    fmt_seconds,
    has_deepstack,
    has_tensor_tables,
    overall,
    provenance_facts,
    provenance_line,
    report_warnings,
    summary_cells,
    summary_columns,
    tensor_sections,
    token_gates,
    tolerance_label,
    tolerance_table,
    vision_gates,
)

MAX_PLOTS_PER_PATH = 40  # heat maps / timelines per path; failing checks first, the rest are in the JSON report
STAGE_ORDER = ("load", "build", "export", "quantize", "preprocess", "vision_encode", "generate", "teacher_forced")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta { color: #57606a; margin-bottom: 12px; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .none { background: #8c959f; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.failed { color: #cf222e; font-weight: 600; }
tr.reference td { color: #57606a; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #57606a; max-width: 260px; overflow-wrap: anywhere; }
figure.failed figcaption { color: #cf222e; } .scroll { overflow-x: auto; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
svg text { font-family: system-ui, sans-serif; fill: #1f2328; } .note { color: #57606a; font-size: 12px; }
table.kv { font-size: 12px; } table.kv table.kv { margin: 0; } table.kv ul { margin: 0; padding-left: 18px; }
.provenance { color: #57606a; font-size: 12px; }
"""

# The only script: wires expand/collapse all, and leaves layout markers a headless browser test reads: the plots
# counted, how many heat maps are laid out and how many of those have their image and heat panels overlapping, and
# whether the header's provenance line has a visible box.
SCRIPT = """
(function () {
  var body = document.body, plots = document.querySelectorAll("svg.plot"), laidOut = 0, overlapping = 0;
  body.setAttribute("data-plots-rendered", String(plots.length));
  document.querySelectorAll("g.heat-panel").forEach(function (heat) {
    var image = heat.ownerSVGElement.querySelector("g.image-panel");
    if (!image) { return; }
    var a = image.getBoundingClientRect(), b = heat.getBoundingClientRect();
    if (a.width === 0 || b.width === 0) { return; }  // inside a closed <details>
    laidOut += 1;
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) { overlapping += 1; }
  });
  body.setAttribute("data-heatmaps-laid-out", String(laidOut));
  body.setAttribute("data-heatmap-panels-overlapping", String(overlapping));
  var line = document.getElementById("provenance"), box = line && line.getBoundingClientRect();
  body.setAttribute("data-provenance-visible", String(Boolean(box && box.width > 0 && box.height > 0)));
  function setAll(open) { document.querySelectorAll("details.plots-of-path").forEach(function (d) { d.open = open; }); }
  document.getElementById("expand-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(false); });
})();
"""


def _verdict_badge(passed: bool | None, none: str = "not run") -> str:
    css, text = {True: ("pass", "PASS"), False: ("fail", "FAIL"), None: ("none", none)}[passed]
    return f'<span class="badge {css}">{escape(text)}</span>'


def _where(check: CheckResult) -> str:
    image = "" if check.image_index is None else f" · image {check.image_index}"
    return f"{check.sample_id}{image}"


def render_html(report: ParityReport) -> str:
    """The whole report as one HTML document (UTF-8, no external resource)."""
    sections = [
        _summary(report),
        _accuracy(report),
        _failures(report),
        _warnings(report),
        _answers(report),
        _histograms(report),
        _heatmaps(report),
        _tensor_tables(report),
        _timelines(report),
        _resources(report),
        _tolerances(report),
        _details(report),
        _provenance(report),
    ]
    title = f"vlparity: {report.model}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>vlparity parity report {_verdict_badge(overall(report), 'nothing ran')}</h1>\n"
        f'<div class="meta">{escape(report.model)} ({escape(report.model_type)}) on {escape(report.device)}/'
        f"{escape(report.dtype)} · every path compared with <b>{escape(report.reference)}</b>"
        + (f" under {escape(tolerance_label(report))}" if tolerance_label(report) else "")
        + " · "
        '<button id="expand-all" type="button">expand all</button> '
        '<button id="collapse-all" type="button">collapse all</button></div>\n'
        + (f'<p class="provenance" id="provenance">{escape(line)}</p>\n' if (line := provenance_line(report)) else "")
        + "\n".join(section for section in sections if section)
        + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _num(text: str) -> str:
    return f'<td class="num">{escape(text)}</td>'


def _summary(report: ParityReport) -> str:
    columns = "".join(f"<th>{escape(column)}</th>" for column in summary_columns(report).values())
    tensors, deepstack = has_tensor_tables(report), has_deepstack(report)
    head = (
        "<tr><th>path</th><th>description</th><th>vision checks (failed)</th>"
        + ("<th>DeepStack checks (failed)</th>" if deepstack else "")
        + "<th>token checks (failed)</th>"
        + ("<th>tensor checks (failed)</th>" if tensors else "")
        + f"{columns}<th>artefact</th><th>verdict</th></tr>"
    )
    rows = []
    for name, path in report.paths.items():
        vision, tokens, table = path.vision_summary(), path.tokens_summary(), path.tensors_summary()
        reference = name == report.reference
        cells = [
            f"<td><b>{escape(name)}</b></td><td>{escape(path.description)}</td>",
            _num(f"{vision['checks']} ({vision['failed']})"),
            *([_num(check_counts(path.vision_summary("deepstack")))] if deepstack else []),
            _num(f"{tokens['checks']} ({tokens['failed']})"),
            *([_num(f"{table['checks']} ({table['failed']})" if table else "-")] if tensors else []),
            *(_num(cell) for cell in summary_cells(report, path)),
            _num(fmt_bytes(path.artefact_bytes)),
            "<td>reference</td>" if reference else f"<td>{_verdict_badge(path.passed)}</td>",
        ]
        rows.append(f'<tr class="{"reference" if reference else "candidate"}">{"".join(cells)}</tr>')
    note = (
        '<p class="note">Each figure is the worst the verdict judged, then its limit (∞: none); KL and same top-1 '
        "are judged on settled steps where the profile sets <code>settled_p</code> (docs/tolerances.md).</p>"
    )
    return f'<h2 id="summary">Summary</h2>\n{note}<table class="summary">{head}{"".join(rows)}</table>'


def _accuracy(report: ParityReport) -> str:
    """Accuracy per path on the eval set, the paired delta with its 95 % CI, and every flipped answer."""
    name, rows = accuracy_rows(report)
    if not rows:
        return ""
    head = "<tr>" + "".join(f"<th>{escape(column)}</th>" for column in ACCURACY_COLUMNS) + "</tr>"
    body = []
    for cells, passed in rows:
        verdict = "<td>reference</td>" if passed is None else f"<td>{_verdict_badge(passed)}</td>"
        figures = "".join(_num(cell) for cell in cells[1:-1])
        css = "reference" if passed is None else "candidate"
        body.append(f'<tr class="{css}"><td><b>{escape(cells[0])}</b></td>{figures}{verdict}</tr>')
    flips = flipped_answers(report)
    flip_table = ""
    if flips:
        flip_head = "<tr>" + "".join(f"<th>{escape(column)}</th>" for column in FLIP_COLUMNS) + "</tr>"
        flip_rows = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in flips)
        flip_table = (
            f'<h3 id="flips">Flipped answers ({len(flips)})</h3>\n<p class="note">lost: {escape(report.reference)} '
            f'was right and the path is wrong; gained: the reverse.</p><table class="flips">{flip_head}{flip_rows}'
            "</table>"
        )
    return (
        f'<h2 id="accuracy">Task accuracy on {escape(name)}</h2>\n<p class="note">Δ: accuracy(path) − '
        "accuracy(reference) on the same questions; 95 % CI: Newcombe's paired score interval; McNemar: exact "
        "two-sided p on the flipped questions. The gate is on the drop (−Δ) against <code>max_accuracy_drop</code>."
        f'</p><table class="accuracy">{head}{"".join(body)}</table>{flip_table}'
    )


def _failures(report: ParityReport) -> str:
    failures = [check for path in report.candidates for check in path.checks if not check.passed]
    if not failures:
        return ""
    items = "".join(
        f"<li><b>{escape(check.path)}</b> {escape(check.check)} [{escape(_where(check))}]: "
        f"{escape('; '.join(check.reasons) or 'no reason recorded')}</li>"
        for check in failures
    )
    return f'<h2 id="failures">Failing checks ({len(failures)})</h2>\n<ul class="failures">{items}</ul>'


def _warnings(report: ParityReport) -> str:
    warnings = report_warnings(report)
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(warning)}</li>" for warning in warnings)
    return f'<h2 id="warnings">Warnings ({len(warnings)})</h2>\n<ul class="warnings">{items}</ul>'


def _answers(report: ParityReport) -> str:
    rows = answers(report)
    if not rows:
        return ""
    names = [path.name for path in report.candidates if any(c.check == "tokens" for c in path.checks)]
    head = "<tr><th>sample</th>" + "".join(f"<th>{escape(n)}</th>" for n in [report.reference, *names]) + "</tr>"
    body = []
    for sample_id, row in rows.items():
        cells = [f"<td>{escape(sample_id)}</td><td>{escape(repr(row[report.reference]))}</td>"]
        for name in names:
            text = "-" if name not in row else "=" if row[name] is None else repr(row[name])
            cells.append(f'<td class="{"same" if text == "=" else "differs"}">{escape(text)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<h2 id="answers">Answers</h2>\n<p class="note">= : the very tokens {escape(report.reference)} generated.</p>'
        f'<table class="answers">{head}{"".join(body)}</table>'
    )


def _vision(path: PathReport) -> list[CheckResult]:
    return [check for check in path.checks if check.check == "vision"]


def _histograms(report: ParityReport) -> str:
    plots = []
    for path in report.candidates:
        merged = merge_histograms([check.series.get("abs_err_histogram") for check in _vision(path)])
        if merged is not None:
            plots.append(f"<figure>{histogram_svg(merged, f'{path.name}: |Δ| of image embeddings')}</figure>")
    if not plots:
        return ""
    return (
        '<h2 id="histograms">Embedding error per path</h2>\n<p class="note">Every element of every image embedding, '
        "binned by log10 |candidate − reference|; green: exactly equal, purple: NaN/Inf.</p>\n"
        f'<div class="plots">{"".join(plots)}</div>'
    )


def _ordered(checks: list[CheckResult]) -> tuple[list[CheckResult], int]:
    """Failing checks first (stable), capped; also how many were left out."""
    ordered = sorted(checks, key=lambda check: check.passed)
    return ordered[:MAX_PLOTS_PER_PATH], max(0, len(ordered) - MAX_PLOTS_PER_PATH)


def _worst(report: ParityReport, key: str, pick: Any) -> str | None:
    """The path whose plots open by default: the worst one, since identical paths look the same."""
    values = {}
    for path in report.candidates:
        summary = path.vision_summary() if key == "min_cosine" else path.tokens_summary()
        value = summary[key]
        if value is not None:
            nan = isinstance(value, float) and math.isnan(value)
            values[path.name] = (float("-inf") if pick is min else float("inf")) if nan else value  # NaN: worst
    return pick(values, key=values.__getitem__) if values else None


def _path_block(path: PathReport, summary: str, open_: bool, figures: list[str], left_out: int) -> str:
    more = f'<p class="note">… {left_out} more in the JSON report.</p>' if left_out else ""
    return (
        f'<details class="plots-of-path" data-path="{escape(path.name)}"{" open" if open_ else ""}>'
        f'<summary>{escape(path.name)}: {escape(summary)}</summary><div class="plots">{"".join(figures)}</div>'
        f"{more}</details>"
    )


def _heatmaps(report: ParityReport) -> str:
    worst = _worst(report, "min_cosine", min)
    blocks = []
    for path in report.candidates:
        checks, left_out = _ordered([check for check in _vision(path) if check.series.get("token_cosine")])
        if not checks:
            continue
        figures = []
        for check in checks:
            series = check.series
            label = f"{path.name} · {_where(check)}"
            plot = heatmap_svg(series["token_cosine"], series.get("grid"), series.get("image"), label)
            caption = " · ".join([_where(check), *map(str, vision_gates(report, _alone(path, check)))])
            figures.append(_figure(check, plot, caption))
        summary = f"{len(_vision(path))} images, " + ", ".join(map(str, vision_gates(report, path)))
        blocks.append(_path_block(path, summary, not path.passed or path.name == worst, figures, left_out))
    if not blocks:
        return ""
    return (
        '<h2 id="heatmaps">Image tokens: cosine per token beside the image</h2>\n<p class="note">Left: the image; '
        "right: one square per image token (merged patch) at the same place; the darker the blue, the further the "
        "candidate's token embedding points from the reference's (fixed log scale below, the same for every image and "
        "path; grey: identical).</p>\n"
        f"{heat_legend_svg()}\n" + "\n".join(blocks)
    )


def _cell(cell: Cell) -> str:
    """A figure right-aligned; one under its limit in the failure colour, with a tooltip saying so."""
    css = " ".join(name for name, on in (("num", cell.numeric), ("failed", cell.failed)) if on)
    attributes = (f' class="{css}"' if css else "") + (' title="under its limit"' if cell.failed else "")
    return f"<td{attributes}>{escape(cell.text)}</td>"


def _table(columns: tuple[str, ...], rows: list[list[Cell]], css: str) -> str:
    head = "<tr>" + "".join(f"<th>{escape(column)}</th>" for column in columns) + "</tr>"
    body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}">{head}{body}</table>'


def _tensor_tables(report: ParityReport) -> str:
    """Per path with ``tensors`` checks: the lowest SQNR against the fp32 graph per location over every sample, then
    the worst tensors of the worst sample."""
    blocks = []
    for section in tensor_sections(report):
        worst = (
            f"<h3>Worst tensors of the worst sample: {escape(section.worst_sample)} "
            f"{_verdict_badge(section.worst_passed)}</h3>\n"
            + _table(WORST_TENSOR_COLUMNS, section.worst, "worst-tensors")
            if section.worst
            else ""
        )
        blocks.append(
            f'<h2 id="tensors-{escape(section.path)}">Per-tensor error table: {escape(section.path)} '
            f"{_verdict_badge(section.passed)}</h2>\n"
            f'<p class="note">{escape(section.facts)}. SQNR = 20·log10(‖fp32‖ / ‖{escape(section.path)} − fp32‖) of '
            "each tensor of the vision graph against the fp32 graph it was derived from, in dB, higher is better "
            "(∞: identical, −∞: NaN or a shape mismatch; red: under the limit). Own rounding: the tensor against "
            "itself before its Q/DQ pair or bf16 cast (-: not rounded).</p>\n"
            "<h3>Lowest SQNR per location over every sample</h3>\n"
            + _table(TENSOR_BLOCK_COLUMNS, section.blocks, "tensor-blocks")
            + worst
        )
    return "\n".join(blocks)


def _alone(path: PathReport, check: CheckResult) -> PathReport:
    """One check as a path of its own, so a plot's caption shows that check's judged figures and limits."""
    return PathReport(path.name, path.description, [check], tolerance_version=path.tolerance_version)


def _figure(check: CheckResult, plot: str, caption: str) -> str:
    """One plot with its caption; a failed check's figure is marked for the stylesheet."""
    css = "" if check.passed else ' class="failed"'
    return f"<figure{css}>{plot}<figcaption>{escape(caption)}</figcaption></figure>"


def _timelines(report: ParityReport) -> str:
    worst = _worst(report, "kl_max", max)
    blocks = []
    for path in report.candidates:
        checks, left_out = _ordered([check for check in path.checks if check.check == "tokens"])
        if not checks:
            continue
        figures = []
        for check in checks:
            series, metrics = check.series, check.metrics
            plot = timeline_svg(
                series.get("reference_pieces", [str(t) for t in metrics.get("reference_tokens", [])]),
                series.get("candidate_pieces", [str(t) for t in metrics.get("candidate_tokens", [])]),
                series.get("kl_per_step", []),
                metrics.get("first_divergence"),
                f"{path.name} · {check.sample_id}",
            )
            caption = " · ".join([check.sample_id, *map(str, token_gates(report, _alone(path, check)))])
            figures.append(_figure(check, f'<div class="scroll">{plot}</div>', caption))
        tokens = path.tokens_summary()
        summary = f"{tokens['checks']} samples, " + ", ".join(map(str, token_gates(report, path)))
        blocks.append(_path_block(path, summary, not path.passed or path.name == worst, figures, left_out))
    if not blocks:
        return ""
    return (
        '<h2 id="timelines">Generated tokens: divergence timeline</h2>\n<p class="note">Top: the greedy tokens of '
        "the reference and of the candidate, step by step (red: different). Bottom: KL(reference ‖ candidate) of "
        "the next-token distributions when both are fed the reference's tokens (log scale; 0 drawn as 0).</p>\n"
        + "\n".join(blocks)
    )


def _stages(report: ParityReport) -> list[str]:
    seen = {stage for path in report.paths.values() for stage in path.timings}
    return [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))


def _resources(report: ParityReport) -> str:
    plots = []
    for stage in _stages(report):
        rows = [
            (
                name,
                path.timings[stage]["mean"],
                f"mean {fmt_seconds(path.timings[stage]['mean'])} · n={path.timings[stage]['count']:.0f} · "
                f"total {fmt_seconds(path.timings[stage]['total'])}",
            )
            for name, path in report.paths.items()
            if stage in path.timings
        ]
        plots.append(f"<figure>{bars_svg('latency', f'{stage}: seconds per call', rows)}</figure>")
    for key, label in (("peak_rss_bytes", "peak RSS (process)"), ("cuda_peak_bytes", "peak CUDA memory")):
        rows = []
        for name, path in report.paths.items():
            values = [memory[key] for memory in path.memory.values() if memory.get(key) is not None]
            if values:
                rows.append((name, float(max(values)), fmt_bytes(max(values))))
        if rows:
            plots.append(f"<figure>{bars_svg('memory', label, rows)}</figure>")
    if not plots:
        return ""
    return (
        '<h2 id="resources">Latency and memory per stage and path</h2>\n<p class="note">Wall time per call of each '
        "stage. Peak RSS is the process's high-water mark at the end of the path's stages: every path runs in one "
        "process, so it is an upper bound for the path (CUDA peaks are per stage).</p>\n"
        f'<div class="plots">{"".join(plots)}</div>'
    )


def _tolerances(report: ParityReport) -> str:
    names, rows = tolerance_table(report)
    if not names:
        return ""
    head = "<tr><th>key</th>" + "".join(f"<th>{escape(name)}</th>" for name in names) + "</tr>"
    body = "".join(
        f"<tr><td><code>{escape(key)}</code></td>{''.join(_num(cell) for cell in cells)}</tr>" for key, cells in rows
    )
    return (
        '<h2 id="tolerances">Tolerance profiles</h2>\n<p class="note">Every limit each path was judged by, as '
        "<code>vlparity/parity/tolerances.toml</code> sets it for this model family (∞, −∞: off; docs/tolerances.md "
        f'explains each key).</p>\n<table class="tolerances">{head}{body}</table>'
    )


def _details(report: ParityReport) -> str:
    blocks = "".join(
        f"<details><summary>{escape(name)}</summary>{key_values(path.details)}</details>"
        for name, path in report.paths.items()
        if path.details
    )
    return f'<h2 id="details">Path details</h2>\n{blocks}' if blocks else ""


def key_values(value: Any) -> str:
    """A path's free-form details made readable: mappings as nested key/value tables, lists as lists, the rest as
    escaped text (``-`` for None, ``none`` for an empty list or mapping, yes/no for booleans)."""
    if isinstance(value, dict):
        if not value:
            return "none"
        rows = "".join(
            f"<tr><th>{escape(str(key))}</th><td>{key_values(item)}</td></tr>" for key, item in value.items()
        )
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list | tuple):
        return f"<ul>{''.join(f'<li>{key_values(item)}</li>' for item in value)}</ul>" if value else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else escape(str(value))


def _provenance(report: ParityReport) -> str:
    facts = [*provenance_facts(report), *report.versions.items()]
    if not facts:
        return ""
    rows = "".join(f"<tr><th>{escape(key)}</th><td>{escape(str(value))}</td></tr>" for key, value in facts)
    return (
        '<h2 id="provenance-table">Provenance and library versions</h2>\n<p class="note">When and where the run was '
        "made, from which vlparity commit, with every library that shapes a verdict.</p>\n"
        f'<table class="kv">{rows}</table>'
    )
