"""Verdict rules: each tolerance limit turns a comparison into a named failure reason."""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable

import numpy as np
import pytest

from vlparity.parity.accuracy import paired_delta
from vlparity.parity.tensor_table import build_table, tensor_error, weight_error
from vlparity.parity.tensors import compare_tensors
from vlparity.parity.tokens import compare_teacher_forced, compare_tokens
from vlparity.parity.tolerances import Tolerance, load_tolerances, tolerance_for
from vlparity.parity.verdict import Verdict, judge_accuracy, judge_tensor_table, judge_tokens, judge_vision
from vlparity.parity.weights import LinearError, judge_weights

EXACT = tolerance_for("split")
TOPK = dataclasses.replace(EXACT, tokens="topk", kl_max=1.0, same_top1_min=0.0, top_k=2)


def test_exact_profile_rejects_any_embedding_difference() -> None:
    reference = np.ones((4, 8), dtype=np.float32)
    candidate = reference.copy()
    candidate[2, 3] += np.float32(1e-6)
    verdict = judge_vision(compare_tensors(reference, candidate, EXACT.vision_atol, EXACT.vision_rtol), EXACT)
    assert not verdict.passed
    assert "max |Δ|" in verdict.reasons[0] and "(2, 3)" in verdict.reasons[0]


def test_nan_embedding_is_reported_as_non_finite() -> None:
    candidate = np.ones((2, 2))
    candidate[0, 0] = np.nan
    verdict = judge_vision(compare_tensors(np.ones((2, 2)), candidate, 1.0, 1.0), EXACT)
    assert not verdict.passed and "non-finite" in verdict.reasons[0]


def test_wrong_image_token_count_is_reported_as_shape() -> None:
    verdict = judge_vision(compare_tensors(np.ones((4, 2)), np.ones((3, 2)), 1.0, 1.0), EXACT)
    assert not verdict.passed and "image token count" in verdict.reasons[0]


def _token_verdict(candidate_runner_up: int, tolerance):
    reference_tokens, candidate_tokens = np.array([1, 3]), np.array([1, 4])
    ref_logits = np.zeros((2, 6))
    ref_logits[0, 1] = ref_logits[1, 3] = 5.0
    ref_logits[1, 4] = 4.0
    cand_logits = np.zeros((2, 6))
    cand_logits[0, 1] = cand_logits[1, 4] = 5.0
    cand_logits[1, candidate_runner_up] = 4.0
    tokens = compare_tokens(reference_tokens, candidate_tokens, ref_logits, cand_logits, top_k=tolerance.top_k)
    teacher_forced = compare_teacher_forced(ref_logits, cand_logits, reference_tokens)
    return judge_tokens(tokens, teacher_forced, tolerance)


def test_exact_rule_fails_any_token_difference() -> None:
    verdict = _token_verdict(candidate_runner_up=3, tolerance=EXACT)
    assert not verdict.passed and "tokens differ" in verdict.reasons[0]


def test_topk_rule_accepts_a_near_tie_and_rejects_a_far_token() -> None:
    assert _token_verdict(candidate_runner_up=3, tolerance=TOPK).passed
    far = _token_verdict(candidate_runner_up=0, tolerance=TOPK)
    assert not far.passed and "top-2" in far.reasons[0]


# --- Every key of the tolerance file does something ------------------------------------------------------------------
# A limit key is checked by breaking exactly that limit in every profile (each family's overrides included) and
# expecting a failure that names the key. Keys that are not limits are pinned by their own behaviour tests, listed in
# BEHAVIOURS: a new field of ``Tolerance`` without either fails the enumeration test below.

FAMILIES = (None, "qwen2_5_vl", "qwen2_vl")
CLEAN_VISION = compare_tensors(np.ones((4, 8)), np.ones((4, 8)), 0.0, 0.0)
CLEAN_LOGITS = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
CLEAN_TOKENS = compare_tokens(np.array([0, 1]), np.array([0, 1]), CLEAN_LOGITS, CLEAN_LOGITS)


def _beyond(limit: float) -> float:
    """A value just past an upper limit (a zero limit is broken by any difference at all)."""
    return 2 * limit if limit > 0 else 1e-12


def _below(limit: float) -> float:
    """A value just under a lower limit on a metric where 1 is perfect."""
    return limit - max(1.0 - limit, 1e-7)


def _vision(tolerance: Tolerance, **metrics: object) -> Verdict:
    return judge_vision(dataclasses.replace(CLEAN_VISION, **metrics), tolerance)


def _tokens(tolerance: Tolerance, kernel: float | None = None, **metrics: object) -> Verdict:
    forced = compare_teacher_forced(CLEAN_LOGITS, CLEAN_LOGITS, np.array([0, 1]), settled_p=tolerance.settled_p)
    return judge_tokens(CLEAN_TOKENS, dataclasses.replace(forced, **metrics), tolerance, kernel)


def _break_atol(tolerance: Tolerance) -> Verdict:
    err = _beyond(tolerance.vision_atol)
    return _vision(
        tolerance, allclose=False, failing_elements=1, max_abs_err=err, min_passing_atol=err, worst_index=(0, 0),
        worst_reference=1.0, worst_candidate=1.0 + err,
    )  # fmt: skip


def _weights(tolerance: Tolerance) -> Verdict:
    """The per-linear weight check of quantized paths (``judge_weights``, run beside ``judge_tokens``)."""
    reasons = judge_weights(
        [LinearError(0, "mlp.down_proj", _beyond(tolerance.weight_max_rel_l2))], tolerance.weight_max_rel_l2
    )
    return Verdict(passed=not reasons, reasons=reasons)


def _accuracy(tolerance: Tolerance) -> Verdict:
    """Task accuracy on an eval set (``judge_accuracy``, run when one is given): the fewest lost answers out of 1000
    that take the drop just past the profile's limit."""
    n = 1000
    lost = math.floor(tolerance.max_accuracy_drop * n) + 1
    return judge_accuracy(paired_delta([True] * n, [True] * (n - lost) + [False] * lost), tolerance)


def _tensor_table(tolerance: Tolerance, tensor_sqnr: float = 200.0, weight_sqnr: float = 200.0) -> Verdict:
    """The per-tensor error table (``judge_tensor_table``, onnx-bf16 / onnx-qdq) with one tensor and one weight at the
    given SQNR against the fp32 graph."""
    reference = np.linspace(1.0, 2.0, 16)
    noise = np.resize([1.0, -1.0], 16) * np.linalg.norm(reference) / 4

    def noisy(sqnr: float) -> np.ndarray:
        return reference + 10 ** (-sqnr / 20) * noise

    tensor = tensor_error("t", "vision.blocks.0", "block 0", 0, reference, noisy(tensor_sqnr), None)
    return judge_tensor_table(
        build_table([tensor], [weight_error("w", "block 0", reference, noisy(weight_sqnr))]), tolerance
    )


BREAKERS: dict[str, Callable[[Tolerance], Verdict | None]] = {
    "vision_atol": lambda t: None if math.isinf(t.vision_atol) else _break_atol(t),
    "vision_min_cosine": lambda t: _vision(t, min_token_cosine=_below(t.vision_min_cosine)),
    "vision_max_rel_l2": lambda t: (
        None if math.isinf(t.vision_max_rel_l2) else _vision(t, rel_l2=_beyond(t.vision_max_rel_l2))
    ),
    "kl_max": lambda t: _tokens(t, kl_max=_beyond(t.kl_max), settled_kl_max=_beyond(t.kl_max)),
    "same_top1_min": lambda t: (
        None
        if t.same_top1_min <= 0
        else _tokens(t, same_top1_rate=_below(t.same_top1_min), settled_same_top1_rate=_below(t.same_top1_min))
    ),
    "kernel_max_abs_logit": lambda t: (
        None if math.isinf(t.kernel_max_abs_logit) else _tokens(t, kernel=_beyond(t.kernel_max_abs_logit))
    ),
    "weight_max_rel_l2": lambda t: None if math.isinf(t.weight_max_rel_l2) else _weights(t),
    "max_accuracy_drop": lambda t: None if t.max_accuracy_drop >= 1 else _accuracy(t),
    "tensor_min_sqnr_db": lambda t: (
        None if math.isinf(t.tensor_min_sqnr_db) else _tensor_table(t, tensor_sqnr=t.tensor_min_sqnr_db - 1)
    ),
    "weight_min_sqnr_db": lambda t: (
        None if math.isinf(t.weight_min_sqnr_db) else _tensor_table(t, weight_sqnr=t.weight_min_sqnr_db - 1)
    ),
}  # None: the profile disables that limit, e.g. atol = inf on fp16/int8

BEHAVIOURS = {  # keys that are not limits → the test that pins what they do
    "vision_rtol": "tests.unit.test_verdict::test_an_element_within_rtol_of_its_reference_passes_beyond_atol",
    "tokens": "tests.unit.test_verdict::test_exact_rule_fails_any_token_difference",
    "top_k": "tests.unit.test_verdict::test_topk_rule_accepts_a_near_tie_and_rejects_a_far_token",
    "settled_p": "tests.unit.test_verdict::test_a_hesitating_reference_step_is_reported_not_gated",
    "version": "tests.unit.test_tolerances::test_every_profile_carries_the_file_version",
}
PROFILES = [  # only the limits a profile sets: one it disables (inf) has nothing to break
    pytest.param(profile, key, id=f"{family or 'shared'}-{path}-{key}")
    for family in FAMILIES
    for path, profile in load_tolerances(model_type=family).items()
    for key, breaker in BREAKERS.items()
    if breaker(profile) is not None
]


def test_every_tolerance_key_is_enforced_or_has_a_behaviour_test() -> None:
    keys = {field.name for field in dataclasses.fields(Tolerance)}
    assert keys == BREAKERS.keys() | BEHAVIOURS.keys() and not BREAKERS.keys() & BEHAVIOURS.keys()
    for target in BEHAVIOURS.values():
        module, name = target.split("::")
        assert callable(getattr(importlib.import_module(module), name, None)), f"missing behaviour test {target}"


def test_every_limit_is_live_in_at_least_one_profile() -> None:
    """Otherwise the per-profile test below would have no case for it and prove nothing."""
    profiles = load_tolerances().values()
    assert [key for key, breaker in BREAKERS.items() if all(breaker(t) is None for t in profiles)] == []


@pytest.mark.parametrize(("tolerance", "key"), PROFILES)
def test_breaking_exactly_one_limit_fails_naming_it(tolerance: Tolerance, key: str) -> None:
    verdict = BREAKERS[key](tolerance)
    assert verdict is not None and not verdict.passed
    assert len(verdict.reasons) == 1 and key in verdict.reasons[0], verdict.reasons


def test_the_clean_metrics_pass_every_profile() -> None:
    """The control for the test above: its metrics fail only because of the one limit it breaks."""
    for family in FAMILIES:
        for tolerance in load_tolerances(model_type=family).values():
            assert _vision(tolerance).passed and _tokens(tolerance, kernel=0.0).passed
            assert judge_accuracy(paired_delta([True, False] * 50, [True, False] * 50), tolerance).passed
            assert _tensor_table(tolerance).passed


@pytest.mark.parametrize(("path", "scale"), [("onnx-fp16", 1.2), ("onnx-int8", 2.0)])
def test_scaled_embeddings_fail_the_relative_l2_limit(path: str, scale: float) -> None:
    """Issue #14: ×1.2 passed onnx-fp16 and ×2 passed onnx-int8: cosine is blind to scale and their atol is inf."""
    tolerance = tolerance_for(path)
    reference = np.random.default_rng(0).standard_normal((16, 32))
    comparison = compare_tensors(reference, reference * scale, tolerance.vision_atol, tolerance.vision_rtol)
    verdict = judge_vision(comparison, tolerance)
    assert not verdict.passed and verdict.reasons == (
        f"relative L2 error {scale - 1:.3g} > {tolerance.vision_max_rel_l2:g} (vision_max_rel_l2): the embeddings' "
        "scale or direction changed",
    )


def test_an_element_within_rtol_of_its_reference_passes_beyond_atol() -> None:
    """vision_rtol relaxes vision_atol (Polygraphy's rule: an element fails only beyond both)."""
    tolerance = dataclasses.replace(
        tolerance_for("onnx"), vision_rtol=0.01, vision_max_rel_l2=math.inf, vision_min_cosine=-1.0
    )
    reference = np.full((4, 8), 100.0)
    within, beyond = reference.copy(), reference.copy()
    within[1, 1] += 0.5  # beyond atol 1e-4, within rtol · 100 = 1
    beyond[1, 1] += 2.0
    judged = [judge_vision(compare_tensors(reference, c, 1e-4, 0.01), tolerance) for c in (within, beyond)]
    assert judged[0].passed and not judged[1].passed and "vision_atol/vision_rtol" in judged[1].reasons[0]


def test_a_hesitating_reference_step_is_reported_not_gated() -> None:
    """settled_p: where the reference's top-1 probability is below it, a flipped argmax is a near tie, not a fault."""
    reference = np.array([[5.0, 0.0, 0.0], [1.0, 0.9, -9.0]])  # step 1: reference 0.52 / 0.48
    candidate = np.array([[5.0, 0.0, 0.0], [0.9, 1.0, -9.0]])  # the near tie flips; KL 5e-3
    tolerance = dataclasses.replace(tolerance_for("onnx-int8"), same_top1_min=0.9, settled_p=0.9)
    tokens = np.array([0, 0])
    gated = compare_teacher_forced(reference, candidate, tokens, settled_p=0.0)
    settled = compare_teacher_forced(reference, candidate, tokens, settled_p=0.9)
    assert not judge_tokens(CLEAN_TOKENS, gated, dataclasses.replace(tolerance, settled_p=0.0)).passed
    assert judge_tokens(CLEAN_TOKENS, settled, tolerance).passed and settled.ambiguous_steps == 1


def test_the_accuracy_gate_judges_the_point_estimate_and_shows_the_interval() -> None:
    """A drop exactly at the limit passes; one more lost answer fails, the reason naming the key, both accuracies,
    the interval and McNemar's p; answers gained elsewhere offset answers lost (the net drop is judged)."""
    tolerance = dataclasses.replace(tolerance_for("onnx-int8"), max_accuracy_drop=0.03)
    at_limit = paired_delta([True] * 100, [True] * 97 + [False] * 3)
    beyond = paired_delta([True] * 100, [True] * 96 + [False] * 4)
    offset = paired_delta([True] * 90 + [False] * 10, [True] * 86 + [False] * 4 + [True] * 10)
    assert judge_accuracy(at_limit, tolerance).passed and judge_accuracy(offset, tolerance).passed
    (reason,) = judge_accuracy(beyond, tolerance).reasons
    assert reason.startswith("accuracy drop 0.04 > 0.03 (max_accuracy_drop): 100.0% → 96.0% on 100 questions")
    assert "95 % CI [" in reason and "McNemar p" in reason and "4 lost / 0 gained" in reason
