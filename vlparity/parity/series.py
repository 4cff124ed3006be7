"""Series for the report's plots: a fixed-bin histogram of |Δ| and the merged patch grid of an image.

Scalars gate; these only show where and how much. Fixed bins keep histograms of different images and paths addable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# log10 |Δ| bin edges: 1e-10 … 10 in half decades. Float32 noise sits near 1e-7, fp16 near 1e-3, int8 near 1e-1.
LOG10_EDGES: tuple[float, ...] = tuple(float(edge) for edge in np.arange(-10.0, 1.01, 0.5))


@dataclass(frozen=True)
class ErrorHistogram:
    """Counts of |candidate − reference| per element; every element lands in exactly one count."""

    log10_edges: tuple[float, ...]
    counts: tuple[int, ...]  # counts[i]: log10_edges[i] <= log10|Δ| < log10_edges[i+1]
    zero: int  # |Δ| == 0 exactly
    below: int  # 0 < |Δ| < 10**log10_edges[0]
    above: int  # |Δ| >= 10**log10_edges[-1]
    nonfinite: int  # NaN or Inf on either side

    @property
    def total(self) -> int:
        return self.zero + self.below + sum(self.counts) + self.above + self.nonfinite


def error_histogram(
    reference: np.ndarray, candidate: np.ndarray, log10_edges: tuple[float, ...] = LOG10_EDGES
) -> ErrorHistogram | None:
    """Histogram of log10 |Δ| on fixed bins (counts only, never the tensor); None when the shapes differ."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        return None
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf is NaN: counted as non-finite below
        diff = np.abs(ref - cand).ravel()
    finite = np.isfinite(diff)
    values = diff[finite]
    positive = values[values > 0]
    edges = np.asarray(log10_edges, dtype=np.float64)
    logs = np.log10(positive)
    inside = logs[(logs >= edges[0]) & (logs < edges[-1])]
    counts, _ = np.histogram(inside, bins=edges)
    return ErrorHistogram(
        log10_edges=tuple(float(edge) for edge in edges),
        counts=tuple(int(count) for count in counts),
        zero=int(values.size - positive.size),
        below=int(np.count_nonzero(logs < edges[0])),
        above=int(np.count_nonzero(logs >= edges[-1])),
        nonfinite=int(diff.size - values.size),
    )


def merged_patch_grid(grid_thw: tuple[int, int, int], spatial_merge: int) -> tuple[int, int]:
    """(rows, cols) of image tokens: the processor's patch grid (t, h, w) after the spatial merge, one frame."""
    _, height, width = (int(v) for v in grid_thw)
    if spatial_merge < 1 or height % spatial_merge or width % spatial_merge:
        raise ValueError(f"grid {tuple(grid_thw)} is not divisible by the spatial merge {spatial_merge}")
    return height // spatial_merge, width // spatial_merge
