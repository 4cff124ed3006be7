"""Inline SVG plots for the HTML report, drawn in Python: viewable offline, no plotting library, no script needed.

Every plot is one ``<svg class="plot" data-kind=…>`` so that a test (or a reader's script) can find and count them.
All text goes through ``html.escape``; numbers are formatted here, never trusted from outside.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from functools import lru_cache
from html import escape
from typing import Any

from PIL import Image, UnidentifiedImageError

PASS_COLOUR, FAIL_COLOUR, NAN_COLOUR = "#1a7f37", "#cf222e", "#6a3d9a"
BAR_COLOUR = "#4c78a8"
# The heat map's colour follows log10(1 − cosine) from HEAT_FLOOR to HEAT_CEIL: one fixed scale for every image and
# path, so a darker square always means a larger error. It is drawn in its own panel beside the image, on a neutral
# grey (identical tokens), in one hue (light to dark blue) that no photo behind it can tint; NaN is purple.
HEAT_FLOOR, HEAT_CEIL = -7.0, 0.0  # 1 − cos = 1: orthogonal tokens
HEAT_BACKGROUND = "#ececec"
HEAT_RAMP = ("#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")  # ColorBrewer Blues
PANEL_GAP = 8  # px between the image panel and the heat-map panel
KL_FLOOR, KL_CEIL = -12.0, 1.0  # log10 KL axis of the timeline
HEATMAP_SIDE = 200  # px of the longer side of a heat map
THUMBNAIL_SIDE = 160  # px of the longer side of the embedded image


def _plot(kind: str, width: float, height: float, label: str, body: list[str]) -> str:
    return (
        f'<svg class="plot" data-kind="{kind}" role="img" aria-label="{escape(label)}" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" {extra}>{escape(text)}</text>'


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == "NaN"


# --- |Δ| histogram --------------------------------------------------------------------------------------------------


def merge_histograms(histograms: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Sum histograms that share their bin edges (the fixed edges make images and samples addable)."""
    usable = [h for h in histograms if h]
    if not usable:
        return None
    edges = usable[0]["log10_edges"]
    same = [h for h in usable if list(h["log10_edges"]) == list(edges)]
    return {
        "log10_edges": list(edges),
        "counts": [sum(h["counts"][i] for h in same) for i in range(len(edges) - 1)],
        **{key: sum(h[key] for h in same) for key in ("zero", "below", "above", "nonfinite")},
    }


def histogram_svg(histogram: dict[str, Any], label: str) -> str:
    """Share of elements per log10 |Δ| bin, with the exact zeros and the non-finite elements as their own bars."""
    edges = list(histogram["log10_edges"])
    bars: list[tuple[str, int, str]] = [("|Δ| = 0", histogram["zero"], PASS_COLOUR)]
    bars.append((f"0 < |Δ| < 1e{edges[0]:+.0f}", histogram["below"], BAR_COLOUR))
    for low, high, count in zip(edges, edges[1:], histogram["counts"], strict=False):
        bars.append((f"{10**low:.2g} ≤ |Δ| < {10**high:.2g}", count, BAR_COLOUR))
    bars.append((f"|Δ| ≥ 1e{edges[-1]:+.0f}", histogram["above"], BAR_COLOUR))
    bars.append(("NaN or Inf", histogram["nonfinite"], NAN_COLOUR))
    total = sum(count for _, count, _ in bars) or 1
    left, top, plot_h, bar_w = 38, 16, 120, 13
    width, height = left + bar_w * len(bars) + 10, top + plot_h + 34
    body = [_text(left, 11, label, size=12, extra='font-weight="600"')]
    for share in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - share)
        body.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        body.append(_text(left - 4, y + 4, f"{share:.0%}", anchor="end", size=10))
    for index, (what, count, colour) in enumerate(bars):
        h = plot_h * count / total
        x = left + index * bar_w
        body.append(
            f'<rect class="bar" x="{x + 1}" y="{top + plot_h - h:.1f}" width="{bar_w - 2}" height="{h:.1f}" '
            f'fill="{colour}">{_title(f"{what}: {count} elements ({count / total:.1%})")}</rect>'
        )
    ticks = {left + bar_w / 2: "0", left + (len(bars) - 0.5) * bar_w: "NaN"}  # centred under their own bars
    ticks.update({left + (2 + i) * bar_w: f"1e{edge:.0f}" for i, edge in enumerate(edges) if edge % 2 == 0})
    for x, tick in ticks.items():  # a decade's tick sits on its bin's lower edge
        body.append(_text(x, top + plot_h + 14, tick, anchor="middle", size=9))
    body.append(_text(left + (width - left) / 2, height - 4, "|candidate − reference| per element", "middle", 10))
    return _plot("histogram", width, height, label, body)


# --- token-cosine heat map over the image -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def thumbnail_data_uri(path: str, side: int = THUMBNAIL_SIDE) -> str | None:
    """The image shrunk to ``side`` px as a base64 JPEG data URI; None when it can no longer be read."""
    try:
        with Image.open(path) as image:
            thumbnail = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    thumbnail.thumbnail((side, side))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def heat_position(cosine: float) -> float | None:
    """Where 1 − cosine sits on the fixed log scale, 0 (HEAT_FLOOR) … 1 (HEAT_CEIL); None for identical tokens or
    a gap below the floor (left on the neutral background)."""
    gap = 1.0 - cosine
    if gap <= 0 or math.log10(gap) <= HEAT_FLOOR:
        return None
    return min((math.log10(gap) - HEAT_FLOOR) / (HEAT_CEIL - HEAT_FLOOR), 1.0)


def heat_colour(position: float) -> str:
    """The ramp's colour at ``position`` (0 … 1), interpolated between its stops."""
    scaled = position * (len(HEAT_RAMP) - 1)
    index = min(int(scaled), len(HEAT_RAMP) - 2)
    low, high = (tuple(int(stop[i : i + 2], 16) for i in (1, 3, 5)) for stop in HEAT_RAMP[index : index + 2])
    fraction = scaled - index
    return "#" + "".join(f"{round(a + (b - a) * fraction):02x}" for a, b in zip(low, high, strict=True))


def heatmap_svg(cosines: Sequence[Any], grid: Sequence[int] | None, image: str | None, label: str) -> str:
    """Two panels of the same size side by side: the image's thumbnail, and one square per image token at its place
    on the merged patch grid (so a square and the part of the image it encodes are at the same spot)."""
    count = len(cosines)
    if grid and len(grid) == 2 and grid[0] * grid[1] == count:
        rows, cols = int(grid[0]), int(grid[1])
    else:  # grid unknown or inconsistent (e.g. a shape mismatch): lay the tokens out square, without the image
        cols = max(1, math.ceil(math.sqrt(count)))
        rows, image = max(1, math.ceil(count / cols)), None
    cell = HEATMAP_SIDE / max(rows, cols)
    width, height = cols * cell, rows * cell
    body = []
    heat_x = 0.0
    if image is not None:
        body.append(_image_panel(image, width, height))
        heat_x = width + PANEL_GAP
    body.append(f'<g class="heat-panel" transform="translate({heat_x:.1f} 0)">')
    body.append(f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="{HEAT_BACKGROUND}"/>')
    for index, value in enumerate(cosines):
        nan = _is_nan(value)
        position = None if nan else heat_position(float(value))
        if not nan and position is None:
            continue  # identical: the background says it, drawing it would only add bytes
        row, col = divmod(index, cols)
        what = "cosine NaN" if nan else f"1 − cosine {1.0 - float(value):.2g}"
        fill = NAN_COLOUR if position is None else heat_colour(position)
        body.append(
            f'<rect class="token" x="{col * cell:.2f}" y="{row * cell:.2f}" width="{cell:.2f}" height="{cell:.2f}" '
            f'fill="{fill}">{_title(f"token {index} (row {row}, col {col}): {what}")}</rect>'
        )
    body.append(f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="none" stroke="#999"/></g>')
    return _plot("heatmap", heat_x + width, height, label, body)


def _image_panel(image: str, width: float, height: float) -> str:
    """The image stretched to the token grid's panel (the grid covers the whole resized image), or a grey
    placeholder when the file can no longer be read."""
    uri = thumbnail_data_uri(image)
    content = (
        f'<image href="{uri}" x="0" y="0" width="{width:.1f}" height="{height:.1f}" preserveAspectRatio="none"/>'
        if uri
        else f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="#eee"/>'
        + _text(width / 2, height / 2, "image unavailable", anchor="middle", size=10, extra='fill="#777"')
    )
    return (
        f'<g class="image-panel">{content}'
        f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="none" stroke="#999"/></g>'
    )


def heat_legend_svg() -> str:
    """The heat map's fixed scale: the colour per decade of 1 − cosine, the background of identical tokens, NaN."""
    steps = list(range(int(HEAT_FLOOR) + 1, int(HEAT_CEIL) + 1))
    swatches = [("≤ 1e-7", HEAT_BACKGROUND)]
    swatches += [(f"1e{decade}", heat_colour(heat_position(1.0 - 10.0**decade) or 0.0)) for decade in steps]
    swatches.append(("NaN", NAN_COLOUR))
    body = [_text(0, 24, "1 − cosine:", size=11)]
    for index, (text, colour) in enumerate(swatches):
        x = 72 + index * 44 + (8 if text == "NaN" else 0)
        body.append(f'<rect x="{x}" y="10" width="40" height="18" fill="{colour}" stroke="#ccc"/>')
        body.append(_text(x + 20, 42, text, anchor="middle", size=10))
    return _plot("legend", 72 + len(swatches) * 44 + 16, 48, "heat map scale", body)


# --- token divergence timeline ------------------------------------------------------------------------------------


def _piece(text: str, limit: int = 8) -> str:
    """A token piece made visible: leading spaces as ␣, newlines as ⏎, cut to ``limit`` characters."""
    shown = text.replace("\n", "⏎").replace(" ", "␣")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def kl_bar_height(kl: float, plot_h: float) -> float:
    if kl <= 0:
        return 0.0
    position = (math.log10(kl) - KL_FLOOR) / (KL_CEIL - KL_FLOOR)
    return plot_h * min(max(position, 0.0), 1.0)


def timeline_svg(
    reference: Sequence[str],
    candidate: Sequence[str],
    kl_per_step: Sequence[Any],
    first_divergence: int | None,
    label: str,
) -> str:
    """Reference vs candidate greedy tokens step by step (differences in red) above the teacher-forced KL per step."""
    steps = max(len(reference), len(candidate), len(kl_per_step), 1)
    left, col, top, plot_h = 86, 58, 20, 64
    row_y = {"step": top, "reference": top + 18, "candidate": top + 36}
    kl_top = top + 52
    width, height = left + steps * col + 8, kl_top + plot_h + 4
    body = [_text(0, row_y["reference"], "reference"), _text(0, row_y["candidate"], "candidate")]
    body.append(_text(0, kl_top + 12, "KL per step"))
    for decade in range(int(KL_FLOOR), int(KL_CEIL) + 1, 4):
        y = kl_top + plot_h - kl_bar_height(10.0**decade, plot_h)
        body.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        body.append(_text(left - 4, y + 3, f"1e{decade}", anchor="end", size=9))
    for step in range(steps):
        x = left + step * col
        ref = reference[step] if step < len(reference) else None
        cand = candidate[step] if step < len(candidate) else None
        body.append(_text(x + col / 2, row_y["step"], str(step), anchor="middle", size=9, extra='fill="#888"'))
        if cand != ref:
            body.append(
                f'<rect class="diverged" x="{x + 1}" y="{row_y["candidate"] - 12}" width="{col - 2}" height="16" '
                f'fill="{FAIL_COLOUR}" fill-opacity="0.18"/>'
            )
        for row, piece in (("reference", ref), ("candidate", cand)):
            shown = "∅" if piece is None else _piece(piece)
            body.append(
                f'<text x="{x + col / 2:.1f}" y="{row_y[row]}" text-anchor="middle" font-size="11" '
                f'font-family="monospace">{_title(repr(piece))}{escape(shown)}</text>'
            )
        if step < len(kl_per_step):
            body.append(_kl_bar(kl_per_step[step], step, x, col, kl_top, plot_h))
    if first_divergence is not None:
        x = left + first_divergence * col
        body.append(
            f'<line class="first-divergence" x1="{x}" x2="{x}" y1="{top - 12}" y2="{kl_top + plot_h}" '
            f'stroke="{FAIL_COLOUR}" stroke-width="2">{_title(f"first divergence at step {first_divergence}")}</line>'
        )
    body.append(f'<line x1="{left}" x2="{width - 8}" y1="{kl_top + plot_h}" y2="{kl_top + plot_h}" stroke="#999"/>')
    return _plot("timeline", width, height, label, body)


def _kl_bar(value: Any, step: int, x: float, col: float, kl_top: float, plot_h: float) -> str:
    if _is_nan(value):
        return (
            f'<rect class="bar" x="{x + 8}" y="{kl_top}" width="{col - 16}" height="{plot_h}" fill="{NAN_COLOUR}">'
            f"{_title(f'step {step}: KL NaN')}</rect>"
        )
    kl = float(value)
    h = kl_bar_height(kl, plot_h)
    mark = "" if h else _text(x + col / 2, kl_top + plot_h - 3, "0" if kl <= 0 else "<", "middle", 9, 'fill="#888"')
    return (
        f'<rect class="bar" x="{x + 8}" y="{kl_top + plot_h - h:.1f}" width="{col - 16}" height="{h:.1f}" '
        f'fill="{BAR_COLOUR}">{_title(f"step {step}: KL {kl:.3g}")}</rect>{mark}'
    )


# --- horizontal bars: latency and memory --------------------------------------------------------------------------


def bars_svg(kind: str, label: str, rows: Sequence[tuple[str, float, str]]) -> str:
    """One horizontal bar per (name, value, text), scaled to the largest value; the text says the number."""
    left, bar_h, gap, plot_w = 92, 16, 6, 220
    height = 22 + len(rows) * (bar_h + gap)
    width = left + plot_w + 210
    largest = max((value for _, value, _ in rows), default=0.0) or 1.0
    body = [_text(0, 12, label, size=12, extra='font-weight="600"')]
    for index, (name, value, text) in enumerate(rows):
        y = 20 + index * (bar_h + gap)
        w = plot_w * value / largest
        body.append(_text(left - 6, y + 12, name, anchor="end"))
        body.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{BAR_COLOUR}">'
            f"{_title(f'{name}: {text}')}</rect>"
        )
        body.append(_text(left + w + 6, y + 12, text, size=10))
    return _plot(kind, width, height, label, body)
