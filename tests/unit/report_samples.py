"""A small ``ParityReport`` built by hand for the rendering tests: one passing path, one failing path with NaN metrics
and hostile text (``<script>``, Markdown and pipe characters) where the user controls it."""

from __future__ import annotations

import math

from vlparity.inputs import fixture_images
from vlparity.parity.series import LOG10_EDGES
from vlparity.report.model import CheckResult, ParityReport, PathReport, summarise_durations, summarise_memory

HOSTILE = "<script>alert('x')</script> | *bold* `code`"
SAMPLE = "square_224|what-is-in-the-image"
HOSTILE_SAMPLE = f"square_224|{HOSTILE}"
NAN_METRICS = {"max_abs_err": math.nan, "min_token_cosine": math.nan}


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
    metrics = {"max_abs_err": 0.0, "min_token_cosine": min(cosines), **metrics}  # NaN-aware callers pass it
    reasons = () if passed else (f"min token cosine nan < 0.99 on {HOSTILE}",)
    return CheckResult(path, "vision", sample, 0, passed, reasons, metrics, series)


def _tokens(path: str, sample: str, candidate: list[int], kl: list[float], text: str) -> CheckResult:
    reference = [10, 11, 2]
    divergence = next((i for i, (r, c) in enumerate(zip(reference, candidate, strict=False)) if r != c), None)
    metrics = {
        "exact": candidate == reference,
        "first_divergence": divergence,
        "match_rate": 1.0 if candidate == reference else 1 / 3,
        "kl_max": max(kl),
        "same_top1_rate": 1.0,
        "reference_tokens": reference,
        "candidate_tokens": candidate,
        "reference_text": f"a {HOSTILE}",
        "candidate_text": text,
    }
    series = {
        "kl_per_step": kl,
        "reference_pieces": ["a", " <script>", "<|im_end|>"],
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
    )


def build_report() -> ParityReport:
    report = ParityReport(
        model="fixtures/qwen2_5_vl",
        model_type="qwen2_5_vl",
        device="cpu",
        dtype="float32",
        reference="original",
        versions={"vlparity": "0.1.0"},
    )
    report.paths["original"] = _path("original", [], 4.0)
    report.paths["split"] = _path(
        "split",
        [
            _vision("split", SAMPLE, True, [1.0] * 6),
            _tokens("split", SAMPLE, [10, 11, 2], [0.0, 0.0, 0.0], f"a {HOSTILE}"),
        ],
        0.2,
    )
    report.paths["onnx-int8"] = _path(
        "onnx-int8",
        [
            _vision("onnx-int8", HOSTILE_SAMPLE, False, [1.0, 0.999, math.nan, 0.9, 1.0, 0.99], **NAN_METRICS),
            _tokens("onnx-int8", HOSTILE_SAMPLE, [12, 11], [0.5, math.nan, 1e-6], "b <script>"),
        ],
        0.4,
    )
    return report
