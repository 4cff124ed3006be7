"""Re-measure the noise floor behind ``parity/tolerances.toml``: the worst metric of each path vs ``original`` over
every fixture image × prompt (plus a two-image prompt), for each fixture family, printed next to its tolerance.

    .venv/bin/python -m vlparity.noise_floor [--paths onnx,onnx-fp16,onnx-int8] [--model DIR ...]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vlparity.inputs import Sample, fixture_images, fixture_prompts
from vlparity.model_source import FIXTURES_DIR
from vlparity.parity.tensors import compare_tensors
from vlparity.parity.tokens import compare_teacher_forced, compare_tokens
from vlparity.paths import PATHS, REFERENCE_PATH
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession, RunSettings


def fixture_samples() -> list[Sample]:
    images, prompts = fixture_images(), fixture_prompts()
    return [Sample((image,), prompt) for image in images for prompt in prompts] + [
        Sample((images[0], images[-1]), prompts[0])
    ]


def measure(session: ParitySession, name: str, samples: list[Sample]) -> dict[str, float]:
    """Worst values over ``samples``: the numbers a tolerance must clear with margin."""
    worst = {"max_abs_err": 0.0, "min_cosine": 1.0, "rel_l2": 0.0, "kl_max": 0.0, "same_top1": 1.0, "kernel": 0.0}
    exact = 0
    for sample in samples:
        for ref, cand in zip(session.embeddings(REFERENCE_PATH, sample), session.embeddings(name, sample), strict=True):
            comparison = compare_tensors(ref, cand, 0.0, 0.0)
            worst["max_abs_err"] = max(worst["max_abs_err"], comparison.max_abs_err)
            worst["min_cosine"] = min(worst["min_cosine"], comparison.min_token_cosine)
            worst["rel_l2"] = max(worst["rel_l2"], comparison.rel_l2)
        reference, candidate = session.generation(REFERENCE_PATH, sample), session.generation(name, sample)
        tokens = compare_tokens(reference.tokens, candidate.tokens, reference.logits, candidate.logits)
        teacher_forced = compare_teacher_forced(
            session.teacher_forced(REFERENCE_PATH, sample), session.teacher_forced(name, sample), reference.tokens
        )
        worst["kl_max"] = max(worst["kl_max"], teacher_forced.kl_max)
        worst["same_top1"] = min(worst["same_top1"], teacher_forced.same_top1_rate)
        kernel = session.kernel_error(name, sample)
        worst["kernel"] = max(worst["kernel"], kernel if kernel is not None else 0.0)
        exact += tokens.exact
    worst["exact_token_samples"] = exact / len(samples)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=",".join(name for name in PATHS if name != REFERENCE_PATH))
    parser.add_argument("--model", action="append", default=None, help="checkpoint dir (default: both fixtures)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    models = args.model or [str(FIXTURES_DIR / "qwen2_5_vl"), str(FIXTURES_DIR / "qwen2_vl")]
    names = [name for name in args.paths.split(",") if name]
    samples = fixture_samples()
    for model in models:
        session = ParitySession(RunSettings(model=model, paths=(REFERENCE_PATH, *names), cache_dir=args.output_dir))
        for name in names:
            worst, tolerance = measure(session, name, samples), session.tolerance(name)
            limits = {
                "max_abs_err": tolerance.vision_atol,
                "min_cosine": tolerance.vision_min_cosine,
                "rel_l2": tolerance.vision_max_rel_l2,
                "kl_max": tolerance.kl_max,
                "same_top1": tolerance.same_top1_min,
                "kernel": tolerance.kernel_max_abs_logit,
            }
            cells = "  ".join(
                f"{key} {value:.3g} (limit {limits[key]:.3g})" for key, value in worst.items() if key in limits
            )
            exact = worst["exact_token_samples"]
            print(f"{Path(model).name} {name}: {cells}  exact tokens {exact:.0%} (rule {tolerance.tokens})")
            assert not math.isnan(worst["max_abs_err"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
