"""Turn comparisons into pass/fail with human-readable reasons. Pure: metrics and a tolerance in, a verdict out."""

from __future__ import annotations

from dataclasses import dataclass

from vlparity.parity.accuracy import AccuracyDelta
from vlparity.parity.tensor_table import TensorTable
from vlparity.parity.tensors import TensorComparison
from vlparity.parity.tokens import TeacherForcedComparison, TokenComparison
from vlparity.parity.tolerances import Tolerance


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]  # empty when passed


def judge_vision(comparison: TensorComparison, tolerance: Tolerance) -> Verdict:
    reasons = []
    if not comparison.shapes_match:
        reasons.append(
            f"shape {comparison.shape_candidate} != reference {comparison.shape_reference} (image token count or "
            "hidden size differs)"
        )
    elif comparison.nonfinite_candidate or comparison.nonfinite_reference:
        reasons.append(
            f"non-finite values: {comparison.nonfinite_candidate} in candidate, "
            f"{comparison.nonfinite_reference} in reference"
        )
    else:
        if not comparison.allclose:
            reasons.append(
                f"{comparison.failing_elements} elements beyond atol={tolerance.vision_atol:g}/"
                f"rtol={tolerance.vision_rtol:g} (vision_atol/vision_rtol); max |Δ| {comparison.max_abs_err:.3g} at "
                f"{comparison.worst_index} (reference {comparison.worst_reference:.6g}, candidate "
                f"{comparison.worst_candidate:.6g}); atol {comparison.min_passing_atol:.3g} would pass"
            )
        if not comparison.min_token_cosine >= tolerance.vision_min_cosine:
            reasons.append(
                f"min per-token cosine {comparison.min_token_cosine:.6f} < {tolerance.vision_min_cosine:g} "
                "(vision_min_cosine)"
            )
        if not comparison.rel_l2 <= tolerance.vision_max_rel_l2:
            reasons.append(
                f"relative L2 error {comparison.rel_l2:.3g} > {tolerance.vision_max_rel_l2:g} (vision_max_rel_l2): "
                "the embeddings' scale or direction changed"
            )
    return Verdict(passed=not reasons, reasons=tuple(reasons))


def judge_tokens(
    tokens: TokenComparison,
    teacher_forced: TeacherForcedComparison,
    tolerance: Tolerance,
    kernel_max_abs_logit: float | None = None,
) -> Verdict:
    """Token rules plus, for quantized paths, the kernel/format error against the dequantized twin."""
    reasons = []
    if kernel_max_abs_logit is not None and not kernel_max_abs_logit <= tolerance.kernel_max_abs_logit:
        reasons.append(
            f"kernel/format error: max |Δlogit| vs the dequantized float twin {kernel_max_abs_logit:.3g} > "
            f"{tolerance.kernel_max_abs_logit:g} (kernel_max_abs_logit; packing, loading or kernel bug, not "
            "quantization error)"
        )
    if not tokens.exact:
        where = f"first divergence at step {tokens.first_divergence}: " + (
            f"reference {tokens.reference_token}, candidate {tokens.candidate_token}"
            if tokens.reference_token is not None  # else one side stopped (end of sequence) where the other went on
            else f"the {'candidate' if tokens.candidate_length < tokens.reference_length else 'reference'} ends "
            f"(end of sequence) after {min(tokens.reference_length, tokens.candidate_length)} token(s), the other "
            f"goes on to {max(tokens.reference_length, tokens.candidate_length)}"
        )
        if tolerance.tokens == "exact":
            reasons.append(f"tokens differ ({where}; match rate {tokens.match_rate:.2f}; tokens = exact)")
        elif not (tokens.reference_in_candidate_topk and tokens.candidate_in_reference_topk):
            reasons.append(f"{where}; not within each other's top-{tokens.top_k} (tokens = topk, top_k)")
    stage = "quantization error: " if kernel_max_abs_logit is not None else ""
    if not teacher_forced.finite:
        reasons.append(f"{stage}teacher-forced logits contain NaN/Inf or have another shape")
    else:
        scope = f", settled steps: reference p ≥ {tolerance.settled_p:g}" if tolerance.settled_p else ""
        if not teacher_forced.settled_kl_max <= tolerance.kl_max:
            kl = teacher_forced.settled_kl_max
            reasons.append(f"{stage}teacher-forced KL max {kl:.3g} > {tolerance.kl_max:g} (kl_max{scope})")
        if not teacher_forced.settled_same_top1_rate >= tolerance.same_top1_min:
            rate = teacher_forced.settled_same_top1_rate
            reasons.append(f"{stage}same-top-1 rate {rate:.3f} < {tolerance.same_top1_min:g} (same_top1_min{scope})")
    return Verdict(passed=not reasons, reasons=tuple(reasons))


def judge_accuracy(delta: AccuracyDelta, tolerance: Tolerance) -> Verdict:
    """Task accuracy on an eval set: fails when the point estimate of the drop, accuracy(original) − accuracy(path),
    exceeds ``max_accuracy_drop``. The 95 % interval and McNemar's p are in the reason (and the report) to read the
    drop by, not gated: a small eval set cannot rule a drop out, and a gate on the interval would pass every fault on
    it."""
    if not delta.drop > tolerance.max_accuracy_drop:
        return Verdict(passed=True, reasons=())
    return Verdict(
        passed=False,
        reasons=(
            f"accuracy drop {delta.drop:.3g} > {tolerance.max_accuracy_drop:g} (max_accuracy_drop): "
            f"{delta.reference_accuracy:.1%} → {delta.candidate_accuracy:.1%} on {delta.n} questions, {delta.lost} "
            f"lost / {delta.gained} gained; Δ {delta.delta:+.3f}, 95 % CI [{delta.ci_low:+.3f}, {delta.ci_high:+.3f}] "
            f"(Newcombe), McNemar p {delta.mcnemar_p:.3g}",
        ),
    )


def judge_tensor_table(table: TensorTable, tolerance: Tolerance, shown: int = 3) -> Verdict:
    """Every tensor and weight of a derived graph against the fp32 graph's: the first tensor (in graph order) under
    ``tensor_min_sqnr_db`` is where the error starts; the worst weight under ``weight_min_sqnr_db`` is named with it."""
    reasons = []
    below = table.below(tolerance.tensor_min_sqnr_db)
    if below:
        first, where = below[0], list(dict.fromkeys(row.location for row in below))
        reasons.append(
            f"{len(below)} of {len(table.tensors)} tensors under {tolerance.tensor_min_sqnr_db:g} dB SQNR against the "
            f"fp32 graph (tensor_min_sqnr_db); the first is {first.name} in {first.location} ({first.scope}): "
            f"{first.sqnr_db:.1f} dB, cosine {first.cosine:.4f}; locations: {', '.join(where[:shown])}"
            f"{f' (+{len(where) - shown} more)' if len(where) > shown else ''}"
        )
    weights = [row for row in table.weights if not row.sqnr_db >= tolerance.weight_min_sqnr_db]
    if weights:
        worst = weights[0]
        reasons.append(
            f"{len(weights)} weight(s) under {tolerance.weight_min_sqnr_db:g} dB SQNR against the fp32 weights "
            f"(weight_min_sqnr_db); the worst is {worst.name} in {worst.location}: {worst.sqnr_db:.1f} dB (far beyond "
            "the rounding of a well-scaled weight: a wrong scale or zero point, or an outlier the scale cannot hold)"
        )
    return Verdict(passed=not reasons, reasons=tuple(reasons))


def first_failing(comparisons: list[TensorComparison], tolerance: Tolerance) -> int | None:
    """Index of the first comparison that fails ``tolerance`` (e.g. the first diverging vision block)."""
    return next((i for i, c in enumerate(comparisons) if not judge_vision(c, tolerance).passed), None)
