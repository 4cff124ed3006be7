"""Per-linear weight error of a quantized language model against its float source. Pure: weights in, errors out.

Why: a teacher-forced KL averages one corrupted layer away (one layer's scales ×2 gave KL 0.026 on an ungated step;
zero points +2 in one down_proj passed outright). Comparing every dequantized linear with the source's names the layer.

AWQ is not a plain round trip of each weight: it multiplies each linear's input columns by activation scales ``s`` and
folds ``1/s`` into the op before it (AutoAWQ ``awq/quantize/scale.py``): the RMSNorm weight before q/k/v and
gate/up (``scale_ln_fcs``), the rows of v_proj before o_proj and of up_proj before down_proj (``scale_fc_fc``, applied
only where the shapes line up, i.e. not under grouped-query attention for v/o). The comparison therefore uses
*effective* weights: ``W ⊙ norm`` for the linears behind a norm (exact: the fold cancels), and for a linear pair the
per-channel scale the fold used, estimated from both sides of the pair (geometric mean of the row-norm ratio of the
first and the column-norm ratio of the second), so a scale fault in either side shows in both and is not absorbed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

LAYERS = "model.language_model.layers"
# The linears behind each RMSNorm, and the linear pairs AWQ may fold a scale between (Qwen2 decoder layer).
NORM_INPUTS = {
    "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
}
LINEAR_PAIRS = (("self_attn.v_proj", "self_attn.o_proj"), ("mlp.up_proj", "mlp.down_proj"))
LINEARS = tuple(f"self_attn.{n}_proj" for n in "qkvo") + tuple(f"mlp.{n}_proj" for n in ("gate", "up", "down"))


@dataclass(frozen=True)
class LinearError:
    """Relative L2 error of one linear's effective weight: ‖candidate − reference‖ / ‖reference‖ (NaN: non-finite)."""

    layer: int
    linear: str  # e.g. "mlp.down_proj"
    rel_l2: float


def _effective(weights: Mapping[str, np.ndarray], layer: int) -> dict[str, np.ndarray]:
    """Each linear's weight (float64) with the norm before it multiplied into its input columns."""
    prefix = f"{LAYERS}.{layer}"
    effective = {name: np.asarray(weights[f"{prefix}.{name}.weight"], np.float64) for name in LINEARS}
    for norm, linears in NORM_INPUTS.items():
        scale = np.asarray(weights[f"{prefix}.{norm}.weight"], np.float64)
        for name in linears:
            effective[name] = effective[name] * scale[None, :]
    return effective


def _norms(matrix: np.ndarray, axis: int) -> np.ndarray:
    return np.sqrt(np.square(matrix).sum(axis=axis))


def _unfold_pairs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> None:
    """Undo the per-channel scale AWQ folded between each linear pair, in ``candidate`` (in place)."""
    for first, second in LINEAR_PAIRS:
        if candidate[second].shape[1] != candidate[first].shape[0]:
            continue  # AutoAWQ folds nothing here (e.g. v_proj → o_proj under grouped-query attention)
        with np.errstate(divide="ignore", invalid="ignore"):
            from_rows = _norms(reference[first], 1) / _norms(candidate[first], 1)
            from_columns = _norms(candidate[second], 0) / _norms(reference[second], 0)
            scale = np.sqrt(from_rows * from_columns)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        candidate[first] = candidate[first] * scale[:, None]
        candidate[second] = candidate[second] / scale[None, :]


def _rel_l2(reference: np.ndarray, candidate: np.ndarray) -> float:
    if reference.shape != candidate.shape or not np.isfinite(candidate).all():
        return float("nan")
    denominator = float(np.linalg.norm(reference))
    error = float(np.linalg.norm(candidate - reference))
    return error / denominator if denominator else (0.0 if error == 0 else float("inf"))


def linear_weight_errors(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], layers: int
) -> list[LinearError]:
    """Every decoder linear's effective-weight error, layer by layer (state-dict names, e.g. a float model's and its
    dequantized twin's)."""
    errors = []
    for layer in range(layers):
        expected, found = _effective(reference, layer), _effective(candidate, layer)
        _unfold_pairs(expected, found)
        errors.extend(LinearError(layer, name, _rel_l2(expected[name], found[name])) for name in LINEARS)
    return errors


def judge_weights(errors: list[LinearError], limit: float) -> tuple[str, ...]:
    """A failure reason naming every linear over ``limit`` (worst first), or none. NaN never passes."""
    failing = sorted((e for e in errors if not e.rel_l2 <= limit), key=lambda e: -np.nan_to_num(e.rel_l2, nan=np.inf))
    if not failing:
        return ()
    named = ", ".join(f"layer {e.layer} {e.linear} {e.rel_l2:.3g}" for e in failing[:4])
    more = f" and {len(failing) - 4} more" if len(failing) > 4 else ""
    return (
        f"weight error: dequantized effective weight rel L2 > {limit:g} (weight_max_rel_l2) vs original in "
        f"{named}{more} (a corrupted layer: scales, zero points or packing)",
    )
