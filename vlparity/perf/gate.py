"""The performance gate: compare the machine-normalised figure of every gated benchmark between two pytest-benchmark
JSON files (``--benchmark-json`` or ``--benchmark-autosave`` output of ``pytest tests/perf``).

    python -m vlparity.perf.gate --baseline BASELINE.json --current CURRENT.json

A gated benchmark carries in its ``extra_info`` (``vlparity.perf.reference.Interleaved.figure``): ``gated: true``,
``normalised_min`` (the fastest round over the fastest run of a reference workload timed right before each round),
``normalised_rel_iqr`` (the spread of the per-round ratios) and ``threads`` (``--perf-threads``). A benchmark
regresses when its current figure exceeds the baseline's by more than its limit, ``max(floor, k × baseline relative
IQR)``: the floor covers what drifts between runs, the IQR term widens the limit of a benchmark whose rounds scatter.
Benchmarks without ``gated: true`` (builds, loads, large images, plugin start-up) are recorded only and not compared.

Exit codes: 0 no regression, 1 at least one regression, 2 bad input (a missing or unreadable file, a gated benchmark
present on one side only or run with other ``--perf-threads``, a gated benchmark without its figure) — the message
names the file or benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

FIGURE = "normalised_min"  # fastest round over fastest reference round (vlparity.perf.reference: why not the median)
DEFAULT_FLOOR = 0.20  # what drifts between runs at one commit: up to +10 % on the 2-core VM (docs/perf-notes.md)
DEFAULT_K = 1.0
WEAK_LIMIT = 0.5  # a benchmark whose limit is wider cannot catch a 1.5× slowdown: named as such under the table
FASTER = "faster"
OK = "ok"
REGRESSED = "REGRESSED"


class GateInputError(Exception):
    """Bad input to the gate (exit 2); the message names the file or benchmark."""


@dataclass(frozen=True)
class Figure:
    """One gated benchmark's normalised figure (lower is faster)."""

    name: str
    value: float
    rel_iqr: float
    rounds: int
    threads: int = 0  # --perf-threads of the run (0: the libraries' defaults)


@dataclass(frozen=True)
class Row:
    name: str
    baseline: float
    current: float
    limit: float

    @property
    def change(self) -> float:
        """Relative change of the figure (+0.25: 25 % slower)."""
        return self.current / self.baseline - 1

    @property
    def verdict(self) -> str:
        if self.change > self.limit:
            return REGRESSED
        return FASTER if self.change < -self.limit else OK


def limit_for(baseline: Figure, floor: float = DEFAULT_FLOOR, k: float = DEFAULT_K) -> float:
    """The largest relative slowdown not flagged: ``max(floor, k × the baseline's relative IQR)``."""
    return max(floor, k * baseline.rel_iqr)


def figures_from_json(document: Mapping, source: str) -> dict[str, Figure]:
    """The gated figures of a pytest-benchmark JSON document, by full benchmark name."""
    benchmarks = document.get("benchmarks") if isinstance(document, Mapping) else None
    if not isinstance(benchmarks, list):
        raise GateInputError(f"{source}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    figures = {}
    for bench in benchmarks:
        name = bench.get("fullname") or bench.get("name")
        info = bench.get("extra_info") or {}
        if not info.get("gated"):
            continue
        value, rel_iqr = info.get(FIGURE), info.get("normalised_rel_iqr")
        if not _positive_finite(value) or not (isinstance(rel_iqr, int | float) and math.isfinite(rel_iqr)):
            raise GateInputError(
                f"{source}: gated benchmark {name} has no valid normalised figure "
                f"({FIGURE}={value!r}, normalised_rel_iqr={rel_iqr!r}); recorded before vlparity 2026-12-01? "
                "Record the baseline again."
            )
        figures[name] = Figure(name, float(value), max(0.0, float(rel_iqr)), int(info.get("normalised_rounds", 0)),
                               int(info.get("threads", 0)))  # fmt: skip
    if not figures:
        raise GateInputError(
            f"{source}: no gated benchmark (extra_info 'gated': true) — recorded before the gate existed, "
            "or not a run of tests/perf?"
        )
    return figures


def _positive_finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def load_figures(path: Path) -> dict[str, Figure]:
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GateInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GateInputError(f"{path}: unreadable ({error})") from None
    return figures_from_json(document, str(path))


def compare(
    baseline: Mapping[str, Figure],
    current: Mapping[str, Figure],
    floor: float = DEFAULT_FLOOR,
    k: float = DEFAULT_K,
) -> list[Row]:
    """One row per gated benchmark; a benchmark gated on one side only is bad input (named)."""
    only_baseline = sorted(set(baseline) - set(current))
    only_current = sorted(set(current) - set(baseline))
    if only_baseline or only_current:
        parts = []
        if only_baseline:
            parts.append(f"missing in the current run: {', '.join(only_baseline)}")
        if only_current:
            parts.append(f"missing in the baseline: {', '.join(only_current)}")
        raise GateInputError("; ".join(parts))
    threads = sorted(name for name in baseline if baseline[name].threads != current[name].threads)
    if threads:
        first = threads[0]
        raise GateInputError(
            f"{first}{f' (+{len(threads) - 1} more)' if len(threads) > 1 else ''} ran with --perf-threads "
            f"{baseline[first].threads} in the baseline and {current[first].threads} now; compare runs made with the "
            "same --perf-threads (0: the libraries' defaults)"
        )
    return [
        Row(name, baseline[name].value, current[name].value, limit_for(baseline[name], floor, k))
        for name in sorted(baseline)
    ]


def format_table(rows: Sequence[Row]) -> str:
    header = ("benchmark", "baseline", "current", "change", "limit", "verdict")
    cells = [
        (_short(row.name), f"{row.baseline:.4g}", f"{row.current:.4g}", f"{row.change:+.1%}", f"{row.limit:.0%}",
         row.verdict)
        for row in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
             for line in [header, tuple("-" * width for width in widths), *cells]]  # fmt: skip
    return "\n".join(lines)


def _short(name: str) -> str:
    return name.rsplit("::", 1)[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vlparity.perf.gate",
        description="Compare the machine-normalised figures of two `pytest tests/perf` runs (pytest-benchmark JSON).",
    )
    parser.add_argument("--baseline", type=Path, required=True, help="pytest-benchmark JSON of the baseline run")
    parser.add_argument("--current", type=Path, required=True, help="pytest-benchmark JSON of the run to judge")
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR, help="smallest limit (default %(default)s)")
    parser.add_argument("--k", type=float, default=DEFAULT_K, help="limit = max(floor, k × baseline relative IQR)")
    args = parser.parse_args(argv)
    if args.floor < 0 or args.k < 0:
        print("vlparity.perf.gate: --floor and --k must be ≥ 0", file=sys.stderr)
        return 2
    try:
        rows = compare(load_figures(args.baseline), load_figures(args.current), args.floor, args.k)
    except GateInputError as error:
        print(f"vlparity.perf.gate: {error}", file=sys.stderr)
        return 2
    print(format_table(rows))
    regressed = [row for row in rows if row.verdict == REGRESSED]
    weak = [_short(row.name) for row in rows if row.limit > WEAK_LIMIT]
    if weak:
        print(f"limit above {WEAK_LIMIT:.0%} (baseline rounds scatter; a 1.5× slowdown would pass): {', '.join(weak)}")
    print(f"{len(regressed)} of {len(rows)} gated benchmarks regressed (limit = max({args.floor:.0%}, {args.k:g} × "
          "baseline relative IQR of the per-round normalised figure)")  # fmt: skip
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main())
