"""Token parity: greedy sequences (vLLM's top-k rule at the first divergence) and teacher-forced distributions
(llama.cpp's KL divergence, same-top-1 rate and Δp of the reference token)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenComparison:
    exact: bool
    first_divergence: int | None
    match_rate: float  # matching positions / longer length
    reference_length: int
    candidate_length: int
    reference_token: int | None  # at the first divergence
    candidate_token: int | None
    reference_in_candidate_topk: bool | None
    candidate_in_reference_topk: bool | None
    top_k: int


def _in_top_k(logits_row: np.ndarray, token: int, k: int) -> bool:
    """True when ``token`` is among the ``k`` highest logits (ties at the k-th value count as inside)."""
    if not np.all(np.isfinite(logits_row)):
        return False
    kth = np.partition(logits_row, -k)[-k] if k < logits_row.size else -np.inf
    return bool(logits_row[token] >= kth)


def compare_tokens(
    reference_tokens: np.ndarray,
    candidate_tokens: np.ndarray,
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    top_k: int = 5,
) -> TokenComparison:
    """Compare greedy outputs; ``*_logits[i]`` is the row that chose ``*_tokens[i]``."""
    ref = np.asarray(reference_tokens, dtype=np.int64)
    cand = np.asarray(candidate_tokens, dtype=np.int64)
    common = min(ref.size, cand.size)
    mismatches = np.flatnonzero(ref[:common] != cand[:common])
    longest = max(ref.size, cand.size)
    if mismatches.size:
        first: int | None = int(mismatches[0])
    elif ref.size != cand.size:
        first = common
    else:
        first = None
    match_rate = float(np.count_nonzero(ref[:common] == cand[:common]) / longest) if longest else 1.0
    ref_token = cand_token = None
    ref_in_cand = cand_in_ref = None
    if first is not None and first < common:
        ref_token, cand_token = int(ref[first]), int(cand[first])
        ref_in_cand = _in_top_k(np.asarray(candidate_logits[first]), ref_token, top_k)
        cand_in_ref = _in_top_k(np.asarray(reference_logits[first]), cand_token, top_k)
    return TokenComparison(
        exact=first is None,
        first_divergence=first,
        match_rate=match_rate,
        reference_length=int(ref.size),
        candidate_length=int(cand.size),
        reference_token=ref_token,
        candidate_token=cand_token,
        reference_in_candidate_topk=ref_in_cand,
        candidate_in_reference_topk=cand_in_ref,
        top_k=top_k,
    )


@dataclass(frozen=True)
class TeacherForcedComparison:
    """Candidate vs reference distributions on the *reference's* token sequence, position by position."""

    steps: int
    kl_mean: float
    kl_p99: float
    kl_max: float
    kl_per_step: tuple[float, ...]
    same_top1_rate: float
    same_top1_stderr: float  # sqrt(p(1-p)/(n-1)), as llama.cpp reports it
    delta_p_mean: float  # mean of p_candidate(ref token) - p_reference(ref token)
    delta_p_max_abs: float
    finite: bool
    # The same KL max / same-top-1 rate over *settled* steps only: those where the reference's top-1 probability is at
    # least ``settled_p``. Where the reference itself hesitates (e.g. two images, two valid answers) a quantized model
    # may legitimately prefer the other answer; such steps are counted in ``ambiguous_steps`` and reported, not gated.
    settled_kl_max: float = 0.0
    settled_same_top1_rate: float = 1.0
    ambiguous_steps: int = 0


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def compare_teacher_forced(
    reference_logits: np.ndarray, candidate_logits: np.ndarray, reference_tokens: np.ndarray, settled_p: float = 0.0
) -> TeacherForcedComparison:
    """KL(reference ‖ candidate) per step, same-top-1 rate and Δp of the reference token. NaN/Inf → not finite."""
    ref = np.asarray(reference_logits, dtype=np.float64)
    cand = np.asarray(candidate_logits, dtype=np.float64)
    tokens = np.asarray(reference_tokens, dtype=np.int64)
    steps = int(tokens.size)
    finite = bool(np.all(np.isfinite(ref)) and np.all(np.isfinite(cand))) and ref.shape == cand.shape
    if not finite or steps == 0:
        value = 0.0 if finite else math.nan
        return TeacherForcedComparison(
            steps, value, value, value, (), 1.0 if finite else 0.0, 0.0, value, value, finite
        )
    log_p, log_q = _log_softmax(ref), _log_softmax(cand)
    p = np.exp(log_p)
    kl = np.maximum((p * (log_p - log_q)).sum(axis=-1), 0.0)  # clamp -1e-17 rounding to 0
    same_top1 = ref.argmax(axis=-1) == cand.argmax(axis=-1)
    rate = float(same_top1.mean())
    rows = np.arange(steps)
    delta_p = np.exp(log_q[rows, tokens]) - p[rows, tokens]
    settled = p.max(axis=-1) >= settled_p
    return TeacherForcedComparison(
        steps=steps,
        kl_mean=float(kl.mean()),
        kl_p99=float(np.percentile(kl, 99)),
        kl_max=float(kl.max()),
        kl_per_step=tuple(float(v) for v in kl),
        same_top1_rate=rate,
        same_top1_stderr=math.sqrt(rate * (1 - rate) / (steps - 1)) if steps > 1 else 0.0,
        delta_p_mean=float(delta_p.mean()),
        delta_p_max_abs=float(np.abs(delta_p).max()),
        finite=True,
        settled_kl_max=float(kl[settled].max()) if settled.any() else 0.0,
        settled_same_top1_rate=float(same_top1[settled].mean()) if settled.any() else 1.0,
        ambiguous_steps=int(steps - settled.sum()),
    )
