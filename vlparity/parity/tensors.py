"""Tensor parity metrics: the numbers Polygraphy reports, plus per-token cosine for image embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorComparison:
    """How far ``candidate`` is from ``reference``. Non-finite values on either side always fail ``allclose``."""

    shape_reference: tuple[int, ...]
    shape_candidate: tuple[int, ...]
    max_abs_err: float
    mean_abs_err: float
    rel_l2: float
    cosine: float
    min_token_cosine: float
    token_cosines: tuple[float, ...]
    worst_index: tuple[int, ...] | None
    worst_reference: float | None
    worst_candidate: float | None
    min_passing_atol: float
    failing_elements: int
    nonfinite_reference: int
    nonfinite_candidate: int
    atol: float
    rtol: float
    allclose: bool

    @property
    def shapes_match(self) -> bool:
        return self.shape_reference == self.shape_candidate


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine in float64; two zero rows count as identical (1), one zero row as unrelated (0)."""
    dot = np.sum(a * b, axis=-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    both_zero = (np.linalg.norm(a, axis=-1) == 0) & (np.linalg.norm(b, axis=-1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    return np.clip(np.where(both_zero, 1.0, cosine), -1.0, 1.0)


def compare_tensors(reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> TensorComparison:
    """Compare two arrays elementwise (Polygraphy's rule: an element fails only if it exceeds atol *and* rtol).

    Rows of a 2-D array are tokens (``[tokens, hidden]``) for the per-token cosine; other ranks count as one row.
    A NaN or Inf on either side, or shapes that differ, give a comparison that cannot pass.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    nonfinite_ref = int(ref.size - np.count_nonzero(np.isfinite(ref)))
    nonfinite_cand = int(cand.size - np.count_nonzero(np.isfinite(cand)))
    if ref.shape != cand.shape:
        return _shape_mismatch(ref, cand, nonfinite_ref, nonfinite_cand, atol, rtol)
    finite = nonfinite_ref == 0 and nonfinite_cand == 0
    diff = np.abs(ref - cand)
    ranked = np.where(np.isnan(diff), np.inf, diff)  # NaN sorts as the worst element
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ranked)), diff.shape)) if diff.size else None
    failing = ~(diff <= np.maximum(atol, rtol * np.abs(ref)))  # NaN compares False, so it fails
    beyond_rtol = ~(diff <= rtol * np.abs(ref))
    rows = (ref.reshape(ref.shape[0], -1), cand.reshape(ref.shape[0], -1)) if ref.ndim == 2 else (
        ref.reshape(1, -1), cand.reshape(1, -1))  # fmt: skip
    token_cosines = _cosine(*rows) if finite else np.full(rows[0].shape[0], np.nan)
    ref_norm = float(np.linalg.norm(ref))
    err_norm = float(np.linalg.norm(ref - cand))
    return TensorComparison(
        shape_reference=ref.shape,
        shape_candidate=cand.shape,
        max_abs_err=float(ranked.max()) if diff.size else 0.0,
        mean_abs_err=float(diff.mean()) if diff.size else 0.0,
        rel_l2=(err_norm / ref_norm if ref_norm else err_norm) if finite else np.nan,
        cosine=float(_cosine(ref.reshape(1, -1), cand.reshape(1, -1))[0]) if finite else np.nan,
        min_token_cosine=float(token_cosines.min()) if token_cosines.size else 1.0,
        token_cosines=tuple(float(c) for c in token_cosines),
        worst_index=worst,
        worst_reference=float(ref[worst]) if worst is not None else None,
        worst_candidate=float(cand[worst]) if worst is not None else None,
        min_passing_atol=float(np.max(np.where(beyond_rtol, ranked, 0.0))) if diff.size else 0.0,
        failing_elements=int(np.count_nonzero(failing)),
        nonfinite_reference=nonfinite_ref,
        nonfinite_candidate=nonfinite_cand,
        atol=atol,
        rtol=rtol,
        allclose=finite and not failing.any(),
    )


def _shape_mismatch(
    ref: np.ndarray, cand: np.ndarray, nonfinite_ref: int, nonfinite_cand: int, atol: float, rtol: float
) -> TensorComparison:
    return TensorComparison(
        shape_reference=ref.shape,
        shape_candidate=cand.shape,
        max_abs_err=np.inf,
        mean_abs_err=np.inf,
        rel_l2=np.inf,
        cosine=np.nan,
        min_token_cosine=np.nan,
        token_cosines=(),
        worst_index=None,
        worst_reference=None,
        worst_candidate=None,
        min_passing_atol=np.inf,
        failing_elements=max(ref.size, cand.size),
        nonfinite_reference=nonfinite_ref,
        nonfinite_candidate=nonfinite_cand,
        atol=atol,
        rtol=rtol,
        allclose=False,
    )
