"""Per-linear weight error with AWQ's scale folds undone (vlparity.parity.weights), on synthetic decoder weights."""

from __future__ import annotations

import numpy as np

from vlparity.parity.tolerances import load_tolerances
from vlparity.parity.weights import LAYERS, LinearError, judge_weights, linear_weight_errors

HIDDEN, KV, INTERMEDIATE = 8, 4, 12


def decoder_layer(rng: np.random.Generator, kv: int = KV) -> dict[str, np.ndarray]:
    shapes = {
        "self_attn.q_proj": (HIDDEN, HIDDEN),
        "self_attn.k_proj": (kv, HIDDEN),
        "self_attn.v_proj": (kv, HIDDEN),
        "self_attn.o_proj": (HIDDEN, HIDDEN),
        "mlp.gate_proj": (INTERMEDIATE, HIDDEN),
        "mlp.up_proj": (INTERMEDIATE, HIDDEN),
        "mlp.down_proj": (HIDDEN, INTERMEDIATE),
    }
    weights = {f"{LAYERS}.0.{name}.weight": rng.normal(size=shape) for name, shape in shapes.items()}
    for norm in ("input_layernorm", "post_attention_layernorm"):
        weights[f"{LAYERS}.0.{norm}.weight"] = rng.uniform(0.5, 1.5, HIDDEN)
    return weights


def awq_folded(weights: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """What AutoAWQ's scale search does to the float weights before quantizing (scale_ln_fcs, scale_fc_fc)."""
    folded = {key: value.copy() for key, value in weights.items()}

    def key(name: str) -> str:
        return f"{LAYERS}.0.{name}.weight"

    for norm, linears in (("input_layernorm", ("q", "k", "v")), ("post_attention_layernorm", ("gate", "up"))):
        scales = rng.uniform(0.5, 4, HIDDEN)
        folded[key(norm)] /= scales
        for linear in linears:
            name = f"self_attn.{linear}_proj" if linear in "qkv" else f"mlp.{linear}_proj"
            folded[key(name)] *= scales[None, :]
    for first, second in (("self_attn.v_proj", "self_attn.o_proj"), ("mlp.up_proj", "mlp.down_proj")):
        if folded[key(first)].shape[0] == folded[key(second)].shape[1]:
            scales = rng.uniform(0.5, 4, folded[key(first)].shape[0])
            folded[key(first)] /= scales[:, None]
            folded[key(second)] *= scales[None, :]
    return folded


def test_awq_scale_folds_alone_give_no_weight_error() -> None:
    rng = np.random.default_rng(0)
    for kv in (KV, HIDDEN):  # grouped-query attention (no v/o fold) and plain multi-head (v/o folded)
        weights = decoder_layer(rng, kv)
        errors = linear_weight_errors(weights, awq_folded(weights, rng), layers=1)
        assert len(errors) == 7 and max(error.rel_l2 for error in errors) < 1e-12


def test_a_doubled_linear_behind_a_norm_is_named_alone() -> None:
    rng = np.random.default_rng(1)
    weights = decoder_layer(rng)
    folded = awq_folded(weights, rng)
    folded[f"{LAYERS}.0.self_attn.k_proj.weight"] *= 2
    errors = {error.linear: error.rel_l2 for error in linear_weight_errors(weights, folded, layers=1)}
    assert abs(errors.pop("self_attn.k_proj") - 1) < 1e-9 and max(errors.values()) < 1e-12


def test_a_doubled_down_proj_shows_in_its_folded_pair_and_nowhere_else() -> None:
    """The fold scale between up_proj and down_proj is estimated from both, so neither side absorbs the fault."""
    rng = np.random.default_rng(2)
    weights = decoder_layer(rng)
    folded = awq_folded(weights, rng)
    folded[f"{LAYERS}.0.mlp.down_proj.weight"] *= 2
    errors = {error.linear: error.rel_l2 for error in linear_weight_errors(weights, folded, layers=1)}
    assert errors.pop("mlp.down_proj") > 0.4 and errors.pop("mlp.up_proj") > 0.4
    assert max(errors.values()) < 1e-12


def test_non_finite_weights_never_pass() -> None:
    rng = np.random.default_rng(3)
    weights = decoder_layer(rng)
    broken = {key: value.copy() for key, value in weights.items()}
    broken[f"{LAYERS}.0.self_attn.o_proj.weight"][0, 0] = np.nan
    errors = linear_weight_errors(weights, broken, layers=1)
    (reason,) = judge_weights(errors, limit=0.35)
    assert "layer 0 self_attn.o_proj nan" in reason


def test_the_reason_names_every_linear_over_the_limit_worst_first() -> None:
    errors = [LinearError(0, "mlp.up_proj", 0.2), LinearError(1, "mlp.down_proj", 0.5), LinearError(1, "a", 0.9)]
    (reason,) = judge_weights(errors, limit=0.35)
    assert "in layer 1 a 0.9, layer 1 mlp.down_proj 0.5 (" in reason and "up_proj" not in reason
    assert judge_weights(errors, limit=1.0) == ()


def test_breaking_weight_max_rel_l2_fails_naming_it_in_every_profile_that_sets_it() -> None:
    """The key is live (the AWQ paths set it) and a linear just beyond it fails with the key named."""
    limits = [t.weight_max_rel_l2 for f in ("qwen2_5_vl", "qwen2_vl") for t in load_tolerances(model_type=f).values()]
    live = [limit for limit in limits if np.isfinite(limit)]
    assert live
    for limit in live:
        (reason,) = judge_weights([LinearError(0, "mlp.down_proj", limit * 1.01 + 1e-9)], limit)
        assert "weight_max_rel_l2" in reason and "layer 0 mlp.down_proj" in reason
        assert judge_weights([LinearError(0, "mlp.down_proj", limit)], limit) == ()
