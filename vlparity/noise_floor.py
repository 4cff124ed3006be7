"""Re-measure the noise floor behind ``parity/tolerances.toml`` and the margin every tolerance keeps above it.

    .venv/bin/python -m vlparity.noise_floor [--paths split,onnx] [--model DIR ...] [--threads 1,2] [--no-self-noise]

For each fixture family (or ``--model``), over every fixture image × prompt plus a two-image prompt:

* the reference against itself: PyTorch at each ``--threads`` count against the first, and a second run at the same
  count (fresh sessions: every model loaded again) — the noise no path can be judged below;
* ONNX Runtime fp32 against itself at each ``--threads`` count;
* every ``--paths`` path against ``original`` (fp32 PyTorch vs ORT fp32 is ``onnx``), next to its limit.

Every row prints each metric's worst value, the limit of the path's tolerance and the margin limit / floor (for
cosine and same-top-1, (1 − limit) / (1 − floor)): ``∞`` where the floor is exactly zero under a non-zero limit,
``exact`` where both are zero (a bit-exact path under a zero tolerance), and below 1 where noise alone would fail.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vlparity.inputs import Sample, fixture_images, fixture_prompts
from vlparity.model_source import FIXTURE_FAMILIES, FIXTURES_DIR
from vlparity.parity.tensors import compare_tensors
from vlparity.parity.tokens import compare_teacher_forced, compare_tokens
from vlparity.parity.tolerances import Tolerance
from vlparity.paths import PATHS, REFERENCE_PATH, Generation
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession, RunSettings

# Metrics where a larger value is worse; for the others (cosine, same-top-1) a smaller value is worse and 1 is perfect.
HIGHER_IS_WORSE = ("max_abs_err", "rel_l2", "kl_max", "kernel")
LOWER_IS_WORSE = ("min_cosine", "same_top1")
METRICS = ("max_abs_err", "min_cosine", "rel_l2", "kl_max", "same_top1", "kernel")


@dataclass(frozen=True)
class Outputs:
    """What one path produced on one sample in one session."""

    vision: list[np.ndarray]  # every vision output per image: the embeddings and each DeepStack level (Qwen3-VL)
    generation: Generation
    teacher_forced: np.ndarray
    kernel: float | None = None  # quantized paths: max |Δlogit| against their dequantized twin


def fixture_samples() -> list[Sample]:
    images, prompts = fixture_images(), fixture_prompts()
    return [Sample((image,), prompt) for image in images for prompt in prompts] + [
        Sample((images[0], images[-1]), prompts[0])
    ]


def _worse(current: float, value: float, higher_is_worse: bool) -> float:
    """The worse of two values; NaN is the worst value a metric can take."""
    if math.isnan(current) or math.isnan(value):
        return math.nan
    return max(current, value) if higher_is_worse else min(current, value)


def worst_of(pairs: Iterable[tuple[Outputs, Outputs]], settled_p: float = 0.0) -> dict[str, float]:
    """Worst value of every metric over (reference, candidate) output pairs: what a tolerance must clear (over every
    step, the ambiguous ones included); also how many teacher-forced steps a ``settled_p`` allowance leaves ungated and
    the reference's lowest top-1 probability (how close the fixtures come to a hesitating reference), and KL and
    same-top-1 over the settled steps only (what ``kl_max`` and ``same_top1_min`` gate)."""
    worst = {"max_abs_err": 0.0, "min_cosine": 1.0, "rel_l2": 0.0, "kl_max": 0.0, "same_top1": 1.0, "kernel": 0.0}
    worst.update(steps=0, ambiguous_steps=0, min_reference_p=1.0, settled_kl_max=0.0, settled_same_top1=1.0)
    exact = count = 0
    for reference, candidate in pairs:
        count += 1
        for ref, cand in zip(reference.vision, candidate.vision, strict=True):
            comparison = compare_tensors(ref, cand, 0.0, 0.0)
            worst["max_abs_err"] = _worse(worst["max_abs_err"], comparison.max_abs_err, True)
            worst["min_cosine"] = _worse(worst["min_cosine"], comparison.min_token_cosine, False)
            worst["rel_l2"] = _worse(worst["rel_l2"], comparison.rel_l2, True)
        ref_gen, cand_gen = reference.generation, candidate.generation
        tokens = compare_tokens(ref_gen.tokens, cand_gen.tokens, ref_gen.logits, cand_gen.logits)
        forced = compare_teacher_forced(reference.teacher_forced, candidate.teacher_forced, ref_gen.tokens, settled_p)
        worst["steps"] += forced.steps
        worst["ambiguous_steps"] += forced.ambiguous_steps
        worst["min_reference_p"] = min(worst["min_reference_p"], _min_top1_probability(reference.teacher_forced))
        worst["kl_max"] = _worse(worst["kl_max"], forced.kl_max, True)
        worst["same_top1"] = _worse(worst["same_top1"], forced.same_top1_rate, False)
        worst["settled_kl_max"] = _worse(worst["settled_kl_max"], forced.settled_kl_max, True)
        worst["settled_same_top1"] = _worse(worst["settled_same_top1"], forced.settled_same_top1_rate, False)
        if candidate.kernel is not None:
            worst["kernel"] = _worse(worst["kernel"], candidate.kernel, True)
        exact += tokens.exact
    worst["exact_token_samples"] = exact / count if count else 1.0
    return worst


def _min_top1_probability(logits: np.ndarray) -> float:
    """The reference's lowest top-1 probability over its teacher-forced steps (1 when there is no step)."""
    if logits.size == 0:
        return 1.0
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    return float((1.0 / np.exp(shifted).sum(axis=-1)).min())


def limits_of(tolerance: Tolerance) -> dict[str, float]:
    return {
        "max_abs_err": tolerance.vision_atol,
        "min_cosine": tolerance.vision_min_cosine,
        "rel_l2": tolerance.vision_max_rel_l2,
        "kl_max": tolerance.kl_max,
        "same_top1": tolerance.same_top1_min,
        "kernel": tolerance.kernel_max_abs_logit,
    }


def margin(metric: str, floor: float, limit: float) -> float:
    """How many times the noise ``floor`` fits under ``limit``: limit / floor, or (1 − limit) / (1 − floor) for
    metrics where 1 is perfect. inf: no noise under a non-zero limit (or no limit); NaN: zero noise under a zero limit
    (bit-exact required and measured); < 1: the noise alone fails the tolerance; 0: NaN noise."""
    if math.isnan(floor):
        return 0.0
    if metric in LOWER_IS_WORSE:
        floor, limit = 1.0 - floor, 1.0 - limit
    if math.isinf(limit):
        return math.inf
    if floor <= 0.0:
        return math.nan if limit <= 0.0 else math.inf
    return limit / floor


def margins(worst: dict[str, float], limits: dict[str, float]) -> dict[str, float]:
    return {metric: margin(metric, worst[metric], limits[metric]) for metric in limits}


def format_margin(value: float) -> str:
    if math.isnan(value):
        return "exact"
    return "∞" if math.isinf(value) else f"{value:.3g}×"


def format_row(label: str, worst: dict[str, float], limits: dict[str, float] | None = None) -> str:
    """One printed row: each metric's worst value and, given limits, the limit and the margin above the floor."""
    cells = []
    for metric in METRICS:
        if metric == "kernel" and not (limits and math.isfinite(limits["kernel"])):
            continue  # only quantized paths have a kernel error
        digits = 7 if metric in LOWER_IS_WORSE else 3  # 0.999999 must not print as 1
        cell = f"{metric} {worst[metric]:.{digits}g}"
        if limits is not None:
            limit = limits[metric]
            cell += f" (limit {limit:.{digits}g}, margin {format_margin(margin(metric, worst[metric], limit))})"
        cells.append(cell)
    steps = ""
    if limits is not None:
        steps = (
            f"  ambiguous steps {worst['ambiguous_steps']:.0f}/{worst['steps']:.0f} (settled steps: KL"
            f" {worst['settled_kl_max']:.3g}, same top-1 {worst['settled_same_top1']:.7g})"
        )
    return (
        f"{label}: {'  '.join(cells)}  min reference p {worst['min_reference_p']:.3g}{steps}  "
        f"exact tokens {worst['exact_token_samples']:.0%}"
    )


def collect(session: ParitySession, name: str, samples: list[Sample]) -> list[Outputs]:
    """Path ``name``'s outputs on every sample (generating the reference's too: teacher forcing scores its tokens)."""
    return [
        Outputs(
            vision=[array for arrays in session.vision_features(name, sample).named().values() for array in arrays],
            generation=session.generation(name, sample),
            teacher_forced=session.teacher_forced(name, sample),
            kernel=session.kernel_error(name, sample),
        )
        for sample in samples
    ]


def collect_with_threads(settings: RunSettings, name: str, samples: list[Sample], threads: int) -> list[Outputs]:
    """A fresh session's outputs of ``name`` with PyTorch and ONNX Runtime limited to ``threads`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        session = ParitySession(
            replace(settings, paths=(REFERENCE_PATH, name), ort=replace(settings.ort, threads=threads))
        )
        return collect(session, name, samples)
    finally:
        torch.set_num_threads(previous)


def self_noise(settings: RunSettings, name: str, samples: list[Sample], threads: list[int]) -> list[tuple[str, dict]]:
    """``name`` against itself: a rerun at the first thread count (fresh session), then each other count against it."""
    first = collect_with_threads(settings, name, samples, threads[0])
    rows = [(f"rerun at {threads[0]} thread(s)", collect_with_threads(settings, name, samples, threads[0]))]
    rows += [(f"{count} vs {threads[0]} thread(s)", collect_with_threads(settings, name, samples, count))
             for count in threads[1:]]  # fmt: skip
    return [(label, worst_of(zip(first, outputs, strict=True))) for label, outputs in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=",".join(name for name in PATHS if name != REFERENCE_PATH))
    parser.add_argument("--model", action="append", default=None, help="checkpoint dir (default: every fixture)")
    parser.add_argument("--threads", default="1,2", help="thread counts for the self-noise runs (first: baseline)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--self-noise", action=argparse.BooleanOptionalAction, default=True,
        help="measure the reference (and onnx) against itself first; --no-self-noise prints only the path rows, "
        "for a new path's profile when the floor is already known (docs/tolerances.md)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    models = args.model or [str(FIXTURES_DIR / family) for family in FIXTURE_FAMILIES]
    names = [name for name in args.paths.split(",") if name]
    threads = [int(count) for count in args.threads.split(",") if count]
    samples = fixture_samples()
    for model in models:
        family = Path(model).name
        settings = RunSettings(model=model, device="cpu", dtype="float32", cache_dir=args.output_dir)
        if args.self_noise:
            for label, worst in self_noise(settings, REFERENCE_PATH, samples, threads):
                print(f"{family} {format_row(f'original (PyTorch fp32) {label}', worst)}")
        if "onnx" in names and args.self_noise:
            for label, worst in self_noise(settings, "onnx", samples, threads):
                print(f"{family} {format_row(f'onnx (ORT fp32) {label}', worst)}")
        session = ParitySession(replace(settings, paths=(REFERENCE_PATH, *names)))
        reference = collect(session, REFERENCE_PATH, samples)
        for name in names:
            settled_p = session.tolerance(name).settled_p
            worst = worst_of(zip(reference, collect(session, name, samples), strict=True), settled_p)
            limits = limits_of(session.tolerance(name))
            rule = f"rule {session.tolerance(name).tokens}, settled_p {settled_p:g}"
            print(f"{family} {format_row(f'{name} vs original', worst, limits)} ({rule})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
