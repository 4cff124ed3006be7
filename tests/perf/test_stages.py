"""Every stage of every available path, one benchmark each, grouped by stage so paths sit side by side.

Figures in ``extra_info``: tokens/s, GFLOP/s against the measured GEMM peak, peak memory, artefact bytes. Rounds are
bounded explicitly (pedantic): the tiny profile is a CI smoke run, the real profile takes minutes.
"""

from __future__ import annotations

import copy
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

from .conftest import available_lm_paths, available_paths, distinct_lm_paths, prepared_runner

PATHS = available_paths()
LM_PATHS = available_lm_paths()
DISTINCT_LM_PATHS = distinct_lm_paths()
DECODE_STEPS = 16
ROUNDS = {"tiny": 3, "real": 1}  # decode's rounds (×2); the other stages size theirs with ``rounds_within``
REAL_ROUND_BUDGET_S = 45.0  # real profile: rounds per benchmark fit in about this much time …
REAL_MAX_ROUNDS = 5  # … up to this many (one round always runs, however long)
ONNX_ROOF = {"onnx": "ort fp32", "onnx-fp16": "ort fp32", "onnx-int8": "ort int8", "awq+onnx": "ort fp32"}


def rounds_within(perf_size: str, first_call_s: float) -> int:
    """Tiny: a fixed 3 (CI smoke run). Real: as many as fit ``REAL_ROUND_BUDGET_S`` after a first call that took
    ``first_call_s`` — a 15 s vision encode gets 3 rounds, a 3-minute fp16 AWQ generation 1."""
    if perf_size == "tiny":
        return ROUNDS["tiny"]
    return max(1, min(REAL_MAX_ROUNDS, int(REAL_ROUND_BUDGET_S / first_call_s)))


def _measure(
    benchmark,
    perf_context,
    perf_size: str,
    run: Callable[[], Any],
    *,
    stage: str,
    path: str,
    around_rounds: AbstractContextManager | None = None,
) -> Any:
    """Benchmark ``run``: first one untimed call that records peak memory, warms caches and sizes the rounds, then
    the timed rounds (inside ``around_rounds``)."""
    benchmark.group = f"{stage} [{perf_size}]"
    benchmark.extra_info.update({"path": path, "stage": stage, "device": str(perf_context.device)})
    with track_memory(perf_context.device) as memory:
        started = time.perf_counter()
        run()
        first_call_s = time.perf_counter() - started
    benchmark.extra_info.update({**memory.as_extra_info(), "first_call_s": first_call_s})
    with around_rounds or nullcontext():
        return benchmark.pedantic(run, rounds=rounds_within(perf_size, first_call_s))


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
    embeddings = _measure(benchmark, perf_context, perf_size, lambda: runner.vision_encode(inputs),
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
    assert all(torch.isfinite(embedding).all() for embedding in embeddings)


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
    benchmark.extra_info.update({"path": path, "stage": "decode", "device": str(perf_context.device)})
    tokens = benchmark.pedantic(decode, setup=fresh_cache, rounds=ROUNDS[perf_size] * 2)
    with track_memory(perf_context.device) as memory:
        decode(*fresh_cache()[0])
    benchmark.extra_info.update({**memory.as_extra_info(), "steps": DECODE_STEPS,
                                 "tokens_per_s": DECODE_STEPS / benchmark.stats.stats.median})  # fmt: skip
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

    runner = _measure(benchmark, perf_context, perf_size, load, stage="load", path=path)
    benchmark.extra_info["artefact_bytes"] = runner.artefact_bytes()
