"""A small ``ParityReport`` built by hand for the rendering tests: one passing path, one failing path with NaN metrics,
nested details (an ORT provider audit) and hostile text (``<script>``, Markdown and pipe characters) where the user
controls it, and a provenance stamp. ``with_tensors`` adds an ``onnx-qdq`` path with per-tensor error tables."""

from __future__ import annotations

import math
from dataclasses import asdict

from vlparity.inputs import fixture_images
from vlparity.parity.series import LOG10_EDGES
from vlparity.parity.tensor_table import TensorError, WeightError, build_table
from vlparity.parity.tolerances import tolerance_for
from vlparity.provenance import Provenance
from vlparity.report.model import CheckResult, ParityReport, PathReport, summarise_durations, summarise_memory
from vlparity.session import tensors_result

HOSTILE = "<script>alert('x')</script> | *bold* `code`"
SAMPLE = "square_224|what-is-in-the-image"
HOSTILE_SAMPLE = f"square_224|{HOSTILE}"
TOLERANCE_VERSION = tolerance_for("split").version
PROVENANCE = Provenance(
    timestamp="2026-12-01T02:30:00Z",
    host="ci-runner-7",
    platform="Linux-6.1.0-x86_64-with-glibc2.36",
    cpu="Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
    commit="0c4cfc1d0c4cfc1d0c4cfc1d0c4cfc1d0c4cfc1d",
    dirty=True,
)
VERSIONS = {"vlparity": "0.1.0", "torch": "2.14.1", "onnxruntime": "1.32.0", "gptqmodel": "not installed"}
PROVIDER_AUDIT = {
    "requested": ["CPUExecutionProvider"],
    "registered": ["CPUExecutionProvider"],
    "nodes_per_provider": {"CPUExecutionProvider": 412},
    "fallback_allowed": False,
}
NAN_METRICS = {"max_abs_err": math.nan, "min_token_cosine": math.nan, "rel_l2": math.nan}


def _histogram(**counts: int) -> dict:
    bins = [0] * (len(LOG10_EDGES) - 1)
    bins[LOG10_EDGES.index(-7.0)] = counts.pop("at_1e7", 0)
    empty = {"zero": 0, "below": 0, "above": 0, "nonfinite": 0}
    return {"log10_edges": list(LOG10_EDGES), "counts": bins, **empty, **counts}


def _vision(path: str, sample: str, passed: bool, cosines: list[float], **metrics: object) -> CheckResult:
    series = {
        "token_cosine": cosines,
        "grid": [2, 3],
        "image": str(fixture_images()[0]),
        "abs_err_histogram": _histogram(zero=500, at_1e7=268) if passed else _histogram(nonfinite=768),
    }
    metrics = {"max_abs_err": 0.0, "min_token_cosine": min(cosines), "rel_l2": 0.0, **metrics}  # NaN-aware callers
    reasons = () if passed else (f"min token cosine nan < 0.99 on {HOSTILE}",)
    return CheckResult(path, "vision", sample, 0, passed, reasons, metrics, series)


def _tokens(
    path: str, sample: str, candidate: list[int], kl: list[float], text: str, reference: list[int], **extra: object
) -> CheckResult:
    divergence = next((i for i, (r, c) in enumerate(zip(reference, candidate, strict=False)) if r != c), None)
    metrics = {
        "exact": candidate == reference,
        "first_divergence": divergence,
        "match_rate": 1.0 if candidate == reference else 1 / 3,
        "kl_max": max(kl),
        "same_top1_rate": 1.0,
        "settled_kl_max": max(kl),
        "settled_same_top1_rate": 1.0,
        "ambiguous_steps": 0,
        "reference_tokens": reference,
        "candidate_tokens": candidate,
        "reference_text": f"{'a' if reference[0] == 10 else 'b'} {HOSTILE}",
        "candidate_text": text,
        **extra,
    }
    series = {
        "kl_per_step": kl,
        "reference_pieces": ["a" if reference[0] == 10 else "b", " <script>", "<|im_end|>"],
        "candidate_pieces": ["a" if candidate[0] == 10 else "b", " <script>", "<|im_end|>"][: len(candidate)],
    }
    passed = candidate == reference
    reasons = () if passed else ("tokens differ from step 0",)
    return CheckResult(path, "tokens", sample, None, passed, reasons, metrics, series)


def _path(name: str, checks: list[CheckResult], seconds: float) -> PathReport:
    return PathReport(
        name=name,
        description=f"{name} path",
        checks=checks,
        timings={"load": summarise_durations([seconds]), "generate": summarise_durations([0.1, 0.3])},
        memory={"load": summarise_memory([800 * 2**20], [None]), "generate": summarise_memory([900 * 2**20], [None])},
        artefact_bytes=None if name == "original" else 5 * 2**20,
        tolerance_version=None if name == "original" else TOLERANCE_VERSION,
    )


def build_report() -> ParityReport:
    report = ParityReport(
        model="fixtures/qwen2_5_vl",
        model_type="qwen2_5_vl",
        device="cpu",
        dtype="float32",
        reference="original",
        versions=dict(VERSIONS),
        provenance=PROVENANCE,
    )
    report.paths["original"] = _path("original", [], 4.0)
    report.paths["split"] = _path(
        "split",
        [
            _vision("split", SAMPLE, True, [1.0] * 6),
            _tokens("split", SAMPLE, [13, 11, 2], [0.0, 0.0, 0.0], f"b {HOSTILE}", reference=[13, 11, 2]),
        ],
        0.2,
    )
    report.paths["onnx-int8"] = _path(
        "onnx-int8",
        [
            _vision("onnx-int8", HOSTILE_SAMPLE, False, [1.0, 0.999, math.nan, 0.9, 1.0, 0.99], **NAN_METRICS),
            _tokens("onnx-int8", HOSTILE_SAMPLE, [12, 11], [0.5, math.nan, 1e-6], "b <script>", reference=[10, 11, 2]),
        ],
        0.4,
    )
    report.paths["onnx-int8"].details = {"onnx_dir": f"/cache/{HOSTILE}", "provider_audit": PROVIDER_AUDIT}
    return report


def hesitating_awq_report() -> ParityReport:
    """Issue #14's case: AWQ's KL is 0.0405 on a step where the reference hesitates, 0.0008 on the settled ones it is
    judged on (Qwen2.5-VL limit 0.01): a pass, which must not read as "KL max 0.0405 … PASS"."""
    report = build_report()
    del report.paths["onnx-int8"]
    settled = {"settled_kl_max": 0.0008, "ambiguous_steps": 1, "kernel_max_abs_logit": 0.005, "weight_max_rel_l2": 0.19}
    check = _tokens("awq", SAMPLE, [13, 11, 2], [0.0008, 0.0405, 0.0], "b", reference=[13, 11, 2], **settled)
    report.paths["awq"] = _path("awq", [check], 0.3)
    return report


def with_references(report: ParityReport, *answers: tuple[list[int], str]) -> ParityReport:
    """``report`` whose only candidate, split, has one passing token check per (reference tokens, text): s0, s1, …"""
    del report.paths["onnx-int8"]
    report.paths["split"].checks = [
        _tokens("split", f"s{i}", tokens, [0.0] * len(tokens), text, tokens, reference_text=text)
        for i, (tokens, text) in enumerate(answers)
    ]
    return report


def with_accuracy(report: ParityReport) -> ParityReport:
    """``report`` with an eval set scored: split passes (nothing flipped), onnx-int8 fails ``max_accuracy_drop`` with
    two flipped answers, one with hostile text in its question and answer."""
    from vlparity.parity.accuracy import compare_accuracy
    from vlparity.parity.tolerances import tolerance_for
    from vlparity.parity.verdict import judge_accuracy

    answers = ["circle", "yes", "red", "no"] * 10
    questions = [f"question {index}?" for index in range(len(answers))]
    questions[1] = f"is it {HOSTILE}?"
    images = [f"{index // 4}.png" for index in range(len(answers))]
    broken = ["circle", HOSTILE, "red", "no"] * 10
    broken[2] = "blue"
    for name, candidate in (("split", answers), ("onnx-int8", broken)):
        comparison = compare_accuracy(answers, answers, candidate, questions, images)
        verdict = judge_accuracy(comparison.delta, tolerance_for(name))
        metrics = {"eval_set": "easy-vqa[:40]", **asdict(comparison.delta), "drop": comparison.delta.drop}
        metrics |= {"changed": comparison.changed, "unanswered": 0}
        flips = [{**asdict(flip), "source": f"easy-vqa test #{flip.index}"} for flip in comparison.flips]
        check = CheckResult(
            name, "accuracy", "easy-vqa[:40]", None, verdict.passed, verdict.reasons, metrics, {"flips": flips}
        )
        report.paths[name].checks.append(check)
    return report


TALL_SAMPLE = "tall_140x420|what-is-in-the-image"
# (name, scope, location, order, SQNR vs fp32, own rounding SQNR, cosine, max |Δ|) per sample; weights are the path's
_PASSING_TENSORS = {
    SAMPLE: [
        ("conv3d", "vision.patch_embed.proj", "patch_embed", 0, math.inf, None, 1.0, 0.0),  # identical
        ("val_260", "attentions.0", "block 0", 10, 23.6, 30.2, 0.997, 0.05),
        ("val_402", "attentions.1", "block 1", 20, 15.2, 30.2, 0.985, 0.31),
        ("transpose_15", "attentions.1", "block 1", 21, 15.6, math.inf, 0.986, 0.3),  # not rounded again
        ("gelu", "vision.merger.mlp.1", "merger", 30, 31.3, 32.8, 0.999, 0.02),
        ("image_embeds", "tower", "tower", 40, 31.7, None, 0.9993, 0.2),
    ],
    TALL_SAMPLE: [
        ("conv3d", "vision.patch_embed.proj", "patch_embed", 0, 28.4, 38.9, 0.9993, 0.01),
        ("val_260", "attentions.0", "block 0", 10, 19.1, 30.2, 0.994, 0.07),
        ("val_402", "attentions.1", "block 1", 20, 13.0, 30.2, 0.976, 0.4),
        ("linear_16", "attentions.1.proj", "block 1", 22, 4.0, 31.6, 0.8033038, 5.18),
        ("view_16", "attentions.1.proj", "block 1", 23, 4.0, math.inf, 0.8033038, 5.18),  # a reshape: no rounding
        ("gelu", "vision.merger.mlp.1", "merger", 30, 12.5, 32.8, 0.978, 1.95),
        ("image_embeds", "tower", "tower", 40, 14.0, None, 0.99, 2.45),
    ],
}
_WEIGHTS = [
    ("vision.patch_embed.proj.weight", "patch_embed", 38.1, 0.001),
    ("vision.blocks.0.mlp.gate_proj.weight", "block 0", 36.5, 0.00106),
    ("attentions.1.qkv.weight", "block 1", 37.2, 0.001),
    ("vision.merger.mlp.0.weight", "merger", 36.7, 0.00095),
]
# A broken sample: NaN from block 1 on (−inf SQNR) after a weight scaled ×4 (−9.5 dB), hostile text in a scope
_BROKEN_TENSORS = [
    ("conv3d", "vision.patch_embed.proj", "patch_embed", 0, 28.4, 38.9, 0.9993, 0.01),
    ("val_260", "attentions.0", "block 0", 10, 19.1, 30.2, 0.994, 0.07),
    ("linear_16", HOSTILE, "block 1", 22, -math.inf, None, 0.0, math.inf),
    ("image_embeds", "tower", "tower", 40, -math.inf, None, 0.0, math.inf),
]
_BROKEN_WEIGHT = ("vision.blocks.1.mlp.down_proj.weight", "block 1", -9.5, 0.25)


def _tensors(path: str, sample: str, rows: list[tuple], weights: list[tuple]) -> CheckResult:
    """A ``tensors`` check as ``ParitySession.check_tensors`` records it, judged by the path's real profile."""
    table = build_table([TensorError(*row) for row in rows], [WeightError(*row) for row in weights])
    return tensors_result(path, sample, table, tolerance_for(path))


def with_tensors(report: ParityReport, broken: bool = False) -> ParityReport:
    """``report`` with an ``onnx-qdq`` path holding only ``tensors`` checks: two passing samples (the worst tensor,
    linear_16 at 4.0 dB in block 1, is on the tall one; patch_embed is identical on the other), plus with ``broken``
    a failing third sample (NaN from block 1 on, one weight at −9.5 dB)."""
    checks = [_tensors("onnx-qdq", sample, rows, _WEIGHTS) for sample, rows in _PASSING_TENSORS.items()]
    if broken:
        checks.append(_tensors("onnx-qdq", HOSTILE_SAMPLE, _BROKEN_TENSORS, [*_WEIGHTS, _BROKEN_WEIGHT]))
    report.paths["onnx-qdq"] = _path("onnx-qdq", checks, 0.3)
    return report
