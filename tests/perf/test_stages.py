"""Every stage of every available path, one benchmark each, grouped by stage so paths sit side by side.

Figures in ``extra_info``: tokens/s, GFLOP/s against the measured GEMM peak, peak memory, artefact bytes, and for
every stage benchmark the machine-normalised figure the perf gate compares (``vlparity.perf.reference``: a fixed
reference workload timed right before every round; ``gated`` says whether ``python -m vlparity.perf.gate`` judges
it). Rounds are bounded explicitly (pedantic): the tiny profile is a CI run, the real profile takes minutes.

``VLPARITY_PERF_SLOWDOWN="test_prefill[split]=1.6,…"`` (test-only) plants a slowdown: the named benchmark's timed
call spins for 0.6× its own duration after each call — how the gate was shown to fail.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pytest
import torch

from vlparity.inputs import Sample
from vlparity.paths.language import decode, prefill
from vlparity.perf.flops import vision_flops
from vlparity.perf.memory import track_memory
from vlparity.perf.reference import Interleaved, planted_slowdown

from .conftest import available_lm_paths, available_paths, distinct_lm_paths, prepared_runner

PATHS = available_paths()
LM_PATHS = available_lm_paths()
DISTINCT_LM_PATHS = distinct_lm_paths()
DECODE_STEPS = 16
TINY_ROUNDS = 3  # tiny, recorded-only benchmarks (load)
# Tiny, gated benchmarks: as many rounds as fit about this much time, within these bounds (a 2 ms preprocess gets
# 1000, a 100 ms generation 20). The gate compares the fastest round; on the 2-core VM a slow phase lasted about a
# second, and 200 rounds of a 2 ms call (0.4 s) could fall inside one entirely (docs/perf-notes.md).
TINY_ROUND_BUDGET_S = 2.0
TINY_GATED_ROUNDS = (15, 1000)
REAL_ROUND_BUDGET_S = 45.0  # real profile: rounds per benchmark fit in about this much time …
REAL_MAX_ROUNDS = 5  # … up to this many (one round always runs, however long)
# The GEMM roof each ONNX vision encoder is read against: onnx-bf16 computes in fp32 kernels (bf16 is simulated by
# casts); onnx-qdq's Q/DQ-wrapped Gemm/MatMul/Conv run as ORT's int8 kernels once its QDQ fusion has run (QGemm,
# QLinearMatMul, QLinearConv in the optimized graph), so it is read as a fraction of the int8 roof (issue #18).
ONNX_ROOF = {
    "onnx": "ort fp32",
    "onnx-fp16": "ort fp32",
    "onnx-int8": "ort int8",
    "onnx-bf16": "ort fp32",
    "onnx-qdq": "ort int8",
    "awq+onnx": "ort fp32",
}
SLOWDOWN_ENV = "VLPARITY_PERF_SLOWDOWN"


def rounds_within(perf_size: str, call_s: float, *, gated: bool = True) -> int:
    """Tiny: gated benchmarks get as many rounds as fit ``TINY_ROUND_BUDGET_S`` (15–1000: the fastest round must
    not all fall in one slow phase of the machine), recorded-only ones 3. Real: as many as fit
    ``REAL_ROUND_BUDGET_S`` after a call that took ``call_s`` — a 15 s vision encode gets 3 rounds, a 3-minute fp16 AWQ
    generation 1."""
    if perf_size == "tiny":
        low, high = TINY_GATED_ROUNDS
        return max(low, min(high, int(TINY_ROUND_BUDGET_S / call_s))) if gated else TINY_ROUNDS
    return max(1, min(REAL_MAX_ROUNDS, int(REAL_ROUND_BUDGET_S / call_s)))


def planted_factors() -> dict[str, float]:
    """``VLPARITY_PERF_SLOWDOWN`` parsed: benchmark name -> slowdown factor."""
    factors = {}
    for item in filter(None, (part.strip() for part in os.environ.get(SLOWDOWN_ENV, "").split(","))):
        name, _, factor = item.rpartition("=")
        factors[name] = float(factor)
    return factors


def _maybe_planted(benchmark, run: Callable) -> Callable:
    factor = planted_factors().get(benchmark.name)
    if factor is None:
        return run
    benchmark.extra_info["planted_slowdown"] = factor
    return planted_slowdown(run, factor)


def reference_kind(stage: str, path: str) -> str:
    """The reference workload of the same kind as the stage: pure Python for preprocessing, ONNX Runtime for the
    ONNX vision encoders, torch for the rest."""
    if stage == "preprocess":
        return "python"
    if stage.startswith("vision encode") and path in ONNX_ROOF:
        return "ort"
    return "torch"


def _measure(
    benchmark,
    perf_context,
    perf_size: str,
    run: Callable[[], Any],
    *,
    stage: str,
    path: str,
    around_rounds: AbstractContextManager | None = None,
    gated: bool = True,
) -> Any:
    """Benchmark ``run``: first one untimed call that records peak memory and warms caches, a second untimed call
    that sizes the rounds, then the timed rounds (inside ``around_rounds``), each right after a timed reference
    workload (the normalised figure)."""
    benchmark.group = f"{stage} [{perf_size}]"
    benchmark.extra_info.update({"path": path, "stage": stage, "device": str(perf_context.device),
                                 "threads": perf_context.ort.threads})  # fmt: skip
    run = _maybe_planted(benchmark, run)
    with track_memory(perf_context.device) as memory:
        started = time.perf_counter()
        run()
        first_call_s = time.perf_counter() - started
    benchmark.extra_info.update({**memory.as_extra_info(), "first_call_s": first_call_s})
    call_s = first_call_s
    if perf_size == "tiny":
        started = time.perf_counter()
        run()
        call_s = time.perf_counter() - started
    interleaved = Interleaved(reference_kind(stage, path), perf_context.ort.threads)
    with around_rounds or nullcontext():
        result = benchmark.pedantic(run, setup=interleaved.setup, rounds=rounds_within(perf_size, call_s, gated=gated))
    benchmark.extra_info.update(interleaved.figure(benchmark.stats.stats.data, gated=gated))
    return result


@pytest.mark.parametrize("path", PATHS)
def test_preprocess(benchmark, runner_for, perf_context, perf_size, perf_sample: Sample, path: str) -> None:
    runner = runner_for(path)
    inputs = _measure(benchmark, perf_context, perf_size, lambda: runner.preprocess(perf_sample), stage="preprocess",
                      path=path)  # fmt: skip
    assert inputs["input_ids"].shape[0] == 1 and "pixel_values" in inputs


@pytest.mark.parametrize("path", PATHS)
def test_vision_encode(
    benchmark, runner_for, perf_context, perf_size, perf_images, roof_probe, image: str, path: str
) -> None:
    """Achieved GFLOP/s read against the matching GEMM roof, probed right before and right after the timed rounds
    (the higher of the two is the roof: on this VM a roof measured minutes away can differ by 2×)."""
    runner = runner_for(path)
    inputs = runner.preprocess(Sample((perf_images[image],), "x"))
    roof = roof_probe.bracket(ONNX_ROOF.get(path, "torch fp32"))
    features = _measure(benchmark, perf_context, perf_size, lambda: runner.vision_encode(inputs),
                          stage=f"vision encode {image}", path=path, around_rounds=roof)  # fmt: skip
    vision = perf_context.adapter.vision_tower(runner_for("original").model)
    flops = vision_flops(vision, perf_context.adapter, inputs["image_grid_thw"])
    achieved = flops.total / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update({
        "patches": int(inputs["pixel_values"].shape[0]),
        "gflop": flops.total / 1e9,
        "gflops_per_s": achieved,
        "roof": roof.kind,
        "roof_gflops_per_s": roof.gflops,
        "roof_probes_gflops_per_s": roof.probes,
        "fraction_of_roof": achieved / roof.gflops,
        "attention_overhead": flops.attention_overhead,
    })  # fmt: skip
    assert all(torch.isfinite(tensor).all() for outputs in features.named().values() for tensor in outputs)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "image" in metafunc.fixturenames:
        from .conftest import REAL_IMAGE_SIDES

        real = metafunc.config.getoption("perf_size") == "real"
        metafunc.parametrize("image", [f"{side}px" for side in REAL_IMAGE_SIDES] if real else ["landscape_320x240"])


@pytest.mark.parametrize("path", DISTINCT_LM_PATHS)
def test_prefill(benchmark, runner_for, perf_context, perf_size, perf_sample: Sample, path: str) -> None:
    runner = runner_for(path)
    inputs = runner.language_inputs(perf_sample)
    _cache, token = _measure(benchmark, perf_context, perf_size, lambda: prefill(runner.language_model, inputs),
                             stage="prefill", path=path)  # fmt: skip
    prompt_tokens = int(inputs["input_ids"].shape[1])
    benchmark.extra_info.update(
        {"prompt_tokens": prompt_tokens, "tokens_per_s": prompt_tokens / benchmark.stats.stats.median}
    )
    assert token.shape == (1, 1)


@pytest.mark.parametrize("path", DISTINCT_LM_PATHS)
def test_decode(benchmark, runner_for, perf_context, perf_size, perf_sample: Sample, path: str) -> None:
    """``DECODE_STEPS`` single-token steps on a copy of one prefilled cache (the copy is made outside the timing)."""
    runner = runner_for(path)
    cache, token = prefill(runner.language_model, runner.language_inputs(perf_sample))

    def fresh_cache() -> tuple[tuple, dict]:
        return (runner.language_model, copy.deepcopy(cache), token, DECODE_STEPS), {}

    benchmark.group = f"decode [{perf_size}]"
    benchmark.extra_info.update({"path": path, "stage": "decode", "device": str(perf_context.device),
                                 "threads": perf_context.ort.threads})  # fmt: skip
    timed = _maybe_planted(benchmark, decode)
    with track_memory(perf_context.device) as memory:
        timed(*fresh_cache()[0])
    arguments = fresh_cache()[0]
    started = time.perf_counter()
    timed(*arguments)
    call_s = time.perf_counter() - started
    interleaved = Interleaved("torch", perf_context.ort.threads)
    rounds = rounds_within(perf_size, call_s)
    tokens = benchmark.pedantic(timed, setup=interleaved.setup_with(fresh_cache), rounds=rounds)
    benchmark.extra_info.update({**memory.as_extra_info(), "steps": DECODE_STEPS,
                                 "tokens_per_s": DECODE_STEPS / benchmark.stats.stats.median,
                                 **interleaved.figure(benchmark.stats.stats.data, gated=True)})  # fmt: skip
    assert tokens.shape == (DECODE_STEPS,)


@pytest.mark.parametrize("path", LM_PATHS)
def test_generate(benchmark, runner_for, perf_context, perf_size, perf_sample: Sample, path: str) -> None:
    """End to end: preprocessing, vision, prefill and greedy decoding of up to 16 tokens (stops at end of turn)."""
    runner = runner_for(path)
    generation = _measure(benchmark, perf_context, perf_size, lambda: runner.generate(perf_sample, 16),
                          stage="generate", path=path)  # fmt: skip
    benchmark.extra_info.update({
        "new_tokens": len(generation.tokens),
        "tokens_per_s": len(generation.tokens) / benchmark.stats.stats.median,
        "artefact_bytes": runner.artefact_bytes(),
    })  # fmt: skip
    assert len(generation.tokens) >= 1 and np.isfinite(generation.logits).all()


@pytest.mark.parametrize("path", PATHS)
def test_load(benchmark, runner_for, perf_context, perf_size, path: str) -> None:
    """Loading a path whose artefacts are already cached (building them is benchmarked in test_build.py)."""
    runner_for(path)  # make sure the artefacts exist, so only loading is timed

    def load() -> Any:
        return prepared_runner(path, perf_context, perf_size)

    # recorded only: file-system and allocator state (page cache, ORT arenas), 3 rounds
    runner = _measure(benchmark, perf_context, perf_size, load, stage="load", path=path, gated=False)
    benchmark.extra_info["artefact_bytes"] = runner.artefact_bytes()
