"""What every rendering shows the same way: number formatting and the per-sample answers of each path."""

from __future__ import annotations

from vlparity.report.model import ParityReport


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
    """Cosines near 1 as ``1 − gap``: "1" would hide the difference between fp32 and int8. Gaps below float64
    rounding of the cosine itself (bit-exact embeddings give 1 − 2.2e-16) are shown as 1."""
    if isinstance(value, float) and 0.999 <= value < 1.0 - 1e-15:
        return f"1 − {1.0 - value:.2g}"
    if isinstance(value, float) and 1.0 - 1e-15 <= value <= 1.0:
        return "1"
    return fmt(value)


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
