"""A small ``ParityReport`` built by hand for the rendering tests: one passing path, one failing path with NaN metrics,
nested details (an ORT provider audit) and hostile text (``<script>``, Markdown and pipe characters) where the user
controls it, and a provenance stamp."""

from __future__ import annotations

import math
from dataclasses import asdict

from vlparity.inputs import fixture_images
from vlparity.parity.series import LOG10_EDGES
from vlparity.parity.tolerances import tolerance_for
from vlparity.provenance import Provenance
from vlparity.report.model import CheckResult, ParityReport, PathReport, summarise_durations, summarise_memory

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
