"""The per-tensor error table of a derived vision graph (``onnx-qdq``, ``onnx-bf16``) against the fp32 graph it was
derived from. Pure: arrays in, rows out.

The final embeddings can hide a large error in one place (a wrong scale in one block is diluted by the residual stream
and the blocks after it); the table looks at every tensor. The measure is ONNX Runtime's ``qdq_loss_debug`` one, the
signal-to-quantization-noise ratio SQNR = 20·log10(‖reference‖ / ‖candidate − reference‖) in dB: int8 rounding of a
well-scaled tensor costs about 30–40 dB, a tensor scaled ×4 reads −9.5 dB. Per tensor it gives

* ``sqnr_db``: the derived graph's value against the fp32 graph's, i.e. the error accumulated up to this tensor, and
* ``rounding_sqnr_db``: the tensor's own rounding (QDQ: before vs after its Q/DQ pair; BF16: before vs after the cast),

and per weight the dequantized (or bf16-rounded) value against the fp32 one. Rows are grouped by where they sit in the
tower (``block N``, ``patch_embed``, ``merger``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorError:
    name: str  # the fp32 graph's tensor name
    scope: str  # the module that computes it, e.g. vision.blocks.2.mlp.down_proj
    location: str  # block N, patch_embed, merger or tower
    order: int  # position of the producing node in the fp32 graph (topological): which tensor comes first
    sqnr_db: float  # against the fp32 graph (accumulated error); −inf: shapes or non-finite values differ
    rounding_sqnr_db: float | None  # this tensor's own rounding; None where the derived graph does not round it
    cosine: float
    max_abs_err: float


@dataclass(frozen=True)
class WeightError:
    name: str
    location: str
    sqnr_db: float
    max_abs_err: float


@dataclass(frozen=True)
class BlockError:
    """One location's worst tensor and weight."""

    location: str
    tensors: int
    min_sqnr_db: float
    worst_tensor: str
    min_weight_sqnr_db: float | None  # None: no weight of this location was changed
    worst_weight: str | None


@dataclass(frozen=True)
class TensorTable:
    tensors: tuple[TensorError, ...]  # worst (lowest SQNR) first
    weights: tuple[WeightError, ...]  # worst first

    def blocks(self) -> tuple[BlockError, ...]:
        """Per location, in tower order: patch_embed, block 0, 1, …, merger, then anything else."""
        locations = {row.location for row in (*self.tensors, *self.weights)}
        rows = []
        for where in sorted(locations, key=_tower_order):
            tensors = [row for row in self.tensors if row.location == where]
            weights = [row for row in self.weights if row.location == where]
            rows.append(
                BlockError(
                    location=where,
                    tensors=len(tensors),
                    min_sqnr_db=tensors[0].sqnr_db if tensors else math.inf,
                    worst_tensor=tensors[0].name if tensors else "",
                    min_weight_sqnr_db=weights[0].sqnr_db if weights else None,
                    worst_weight=weights[0].name if weights else None,
                )
            )
        return tuple(rows)

    def below(self, min_sqnr_db: float) -> tuple[TensorError, ...]:
        """Tensors under ``min_sqnr_db``, in graph order: the first is where the error starts."""
        return tuple(sorted((row for row in self.tensors if not row.sqnr_db >= min_sqnr_db), key=lambda r: r.order))


def _tower_order(location: str) -> tuple[int, int]:
    match = re.fullmatch(r"block (\d+)", location)
    if match:
        return 1, int(match.group(1))
    return {"patch_embed": (0, 0), "merger": (2, 0)}.get(location, (3, 0))


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """SQNR of ``candidate`` against ``reference`` in dB. +inf when identical. Positions where both hold the same
    infinity (an additive attention mask's −inf) are left out; any other NaN/Inf, or shapes that differ, give −inf."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        return -math.inf
    finite = np.isfinite(ref) & np.isfinite(cand)
    if not (finite | (ref == cand)).all():
        return -math.inf
    noise = float(np.linalg.norm(ref[finite] - cand[finite]))
    if noise == 0.0:
        return math.inf
    signal = float(np.linalg.norm(ref[finite]))
    return 20.0 * math.log10(signal / noise) if signal > 0.0 else -math.inf


def _cosine_and_max(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Cosine of the flattened finite values (two zero tensors: 1) and max |Δ| (inf where NaN/Inf differ)."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cand = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != cand.shape:
        return 0.0, math.inf
    finite = np.isfinite(ref) & np.isfinite(cand)
    if not (finite | (ref == cand)).all():
        return 0.0, math.inf
    ref, cand = ref[finite], cand[finite]
    norms = float(np.linalg.norm(ref) * np.linalg.norm(cand))
    cosine = float(ref @ cand) / norms if norms else float(np.array_equal(ref, cand))
    return cosine, float(np.max(np.abs(ref - cand), initial=0.0))


def tensor_error(
    name: str,
    scope: str,
    location: str,
    order: int,
    reference: np.ndarray,
    candidate: np.ndarray,
    unrounded: np.ndarray | None,
) -> TensorError:
    cosine, max_abs = _cosine_and_max(reference, candidate)
    rounding = sqnr_db(unrounded, candidate) if unrounded is not None else None
    return TensorError(name, scope, location, order, sqnr_db(reference, candidate), rounding, cosine, max_abs)


def weight_error(name: str, location: str, reference: np.ndarray, candidate: np.ndarray) -> WeightError:
    return WeightError(name, location, sqnr_db(reference, candidate), _cosine_and_max(reference, candidate)[1])


def _worst_rounding(rows: list[TensorError]) -> float | None:
    values = [row.rounding_sqnr_db for row in rows if row.rounding_sqnr_db is not None]
    return min(values) if values else None


def build_table(tensors: Iterable[TensorError], weights: Iterable[WeightError]) -> TensorTable:
    """The table of one or more runs (e.g. one per image): each tensor's worst value over the runs, worst first."""
    by_name: dict[str, list[TensorError]] = {}
    for row in tensors:
        by_name.setdefault(row.name, []).append(row)
    merged = [
        dataclasses.replace(
            rows[0],
            sqnr_db=min(row.sqnr_db for row in rows),
            rounding_sqnr_db=_worst_rounding(rows),
            cosine=min(row.cosine for row in rows),
            max_abs_err=max(row.max_abs_err for row in rows),
        )
        for rows in by_name.values()
    ]
    return TensorTable(
        tensors=tuple(sorted(merged, key=lambda row: (row.sqnr_db, row.order))),
        weights=tuple(sorted({row.name: row for row in weights}.values(), key=lambda row: (row.sqnr_db, row.name))),
    )


def noise_growth(nodes: Iterable[tuple[str, Sequence[str], Sequence[str]]], table: TensorTable) -> dict[str, float]:
    """How much noise each node adds, as a noise-to-signal power ratio (10^(−SQNR/10)): that of its noisiest output
    minus that of its noisiest input, or that of the noisiest weight it reads if larger. ``nodes`` are (name, input
    names, output names) of the fp32 graph; a tensor the table lacks (a graph input, an unchanged weight) counts as
    exact. What ``--suggest-exclusions`` ranks nodes by: the node whose own arithmetic adds the most error, not the one
    that merely carries the error of those before it."""
    noise = {row.name: 10.0 ** (-row.sqnr_db / 10.0) for row in table.tensors}  # −inf dB → inf, +inf dB → 0
    weights = {row.name: 10.0 ** (-row.sqnr_db / 10.0) for row in table.weights}
    growth = {}
    for name, inputs, outputs in nodes:
        carried = max((noise.get(tensor, 0.0) for tensor in inputs), default=0.0)
        produced = max((noise.get(tensor, 0.0) for tensor in outputs), default=0.0)
        added = produced - carried if math.isfinite(carried) else 0.0  # after an inf, nothing more is added
        growth[name] = max(added, *(weights.get(tensor, 0.0) for tensor in inputs))
    return growth
