"""Where a language model's divergence starts: its hidden states, layer by layer, against the reference's on the same
inputs. Pure: arrays in, a ``LayerDivergence`` out.

A state list is ``[input embeddings, decoder layer 0 output, …, decoder layer L-1 output, logits]`` (transformers'
``output_hidden_states`` plus the logits), so a fault in ``embed_tokens``, in one decoder layer or in the LM head is
located by which entry first differs. transformers applies the final norm to the last layer's output, so a final-norm
fault reads as the last decoder layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A state diverges when its error exceeds this multiple of the reference's own run-to-run error. On a deterministic
# device (CPU) that error is 0, so any difference at all is located; a device whose kernels vary between runs gets room.
NOISE_FACTOR = 10.0


@dataclass(frozen=True)
class LayerDivergence:
    rel_l2: tuple[float, ...]  # ‖candidate − reference‖ / ‖reference‖ per state; NaN where either is non-finite
    first_diverging: int | None  # first state whose rel L2 exceeds the threshold (NaN always does); None: all agree
    largest_growth: int | None  # state whose rel L2 rises most over the state before it (None: no state)


def _rel_l2(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape or not (np.isfinite(ref).all() and np.isfinite(cand).all()):
        return math.nan
    norm = float(np.linalg.norm(ref))
    error = float(np.linalg.norm(cand - ref))
    return error / norm if norm else error


def compare_layers(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], max_rel_l2: float
) -> LayerDivergence:
    """Per-state relative L2 error, the first state beyond ``max_rel_l2`` and the state where the error grows most.

    ``first_diverging`` suits models that should match the reference exactly (any error is a fault); for quantized
    models every layer carries some error, and ``largest_growth`` points at the layer that adds the most of it.
    """
    if len(reference) != len(candidate):
        raise ValueError(f"{len(candidate)} candidate states, reference has {len(reference)}")
    errors = tuple(_rel_l2(ref, cand) for ref, cand in zip(reference, candidate, strict=True))
    first = next((i for i, error in enumerate(errors) if not error <= max_rel_l2), None)
    worst = [math.inf if math.isnan(error) else error for error in errors]
    rises = [error - (worst[i - 1] if i else 0.0) for i, error in enumerate(worst)]
    rises = [math.inf if math.isnan(rise) else rise for rise in rises]  # inf − inf after a NaN state stays worst
    largest = int(np.argmax(rises)) if rises else None
    return LayerDivergence(rel_l2=errors, first_diverging=first, largest_growth=largest)


def noise_threshold(first: Sequence[np.ndarray], second: Sequence[np.ndarray], factor: float = NOISE_FACTOR) -> float:
    """The ``max_rel_l2`` for ``compare_layers``, measured rather than assumed: ``factor`` × the largest per-state error
    between two runs of the *reference* on the same inputs (how much it disagrees with itself)."""
    return factor * max((_rel_l2(a, b) for a, b in zip(first, second, strict=True)), default=0.0)
