"""Large images in ONNX Runtime: 1344×1344 (96×96 = 9216 patches) in the real profile, 896×896 (64×64 = 4096) in
the tiny one, whose 1344² mask variant peaked at 16.5 GB RSS in CI ([4, 9216, 9216] float32 scores per attention
intermediate); at 896² the tiny profile stays under 4 GB.

- Per-segment attention vs a block-diagonal mask on the fixture: the mask variant attends over all N patches in every
  block (O(N²) memory and time in windowed blocks too); the segment layout keeps windowed blocks at O(N·64). Both are
  exact; the benchmark shows what the layout saves.
- Time per linear-layer FLOP at the large size against 448² for the ``--perf-size`` model (the perf target: a large
  image costs no more than about 2× its linear FLOPs). Read at real size: the tiny fixture's attention dominates by
  construction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlparity.export.onnx_vision import MODEL_NAME, ExportSettings
from vlparity.paths.onnx import build_onnx_vision
from vlparity.perf.flops import vision_flops
from vlparity.perf.memory import track_memory
from vlparity.runtime.ort import AuditedSession, OrtOptions

BASE = ("448px", (32, 32))
LARGE = {"tiny": ("896px", (64, 64)), "real": ("1344px", (96, 96))}  # by --perf-size
SECONDS_PER_LINEAR_TFLOP: dict[str, float] = {}  # by size, filled in parametrization order (448px first)


def grids(perf_size: str) -> dict[str, tuple[int, int]]:
    return dict([BASE, LARGE[perf_size]])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        metafunc.parametrize("size", list(grids(metafunc.config.getoption("perf_size"))))


@pytest.fixture
def attention_session(fixture_context, attention: str) -> AuditedSession:
    """One session per test: ORT's arena keeps its high-water mark for the session's life, and the two variants'
    arenas held together took the tiny profile past 5 GB."""
    export = build_onnx_vision(fixture_context, ExportSettings("fp32", attention=attention)) / MODEL_NAME
    return AuditedSession(export, OrtOptions())


def _feeds(context, grid: tuple[int, int]) -> dict[str, np.ndarray]:
    grid_thw = torch.tensor([[1, *grid]])
    pixel_values = torch.randn(grid[0] * grid[1], 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(0))
    vision_config = context.adapter.model_class.config_class.from_pretrained(context.source.directory).vision_config
    return {"pixel_values": pixel_values.numpy(), **context.adapter.export_inputs(grid_thw, vision_config)}


@pytest.mark.parametrize("attention", ["segments", "mask"])
def test_vision_encode_large_image(
    benchmark, attention_session, fixture_context, perf_size: str, attention: str, size: str
) -> None:
    feeds = _feeds(fixture_context, grids(perf_size)[size])
    session = attention_session
    benchmark.group = f"onnx vision attention, {size}"
    benchmark.extra_info.update({"patches": int(feeds["pixel_values"].shape[0]), "attention": attention})
    rounds = 1 if size == "1344px" else 3  # bounded: the 1344px mask variant takes ~10 s a round on 2 cores
    (embeds,) = benchmark.pedantic(lambda: session.run(feeds, ["image_embeds"]), rounds=rounds, warmup_rounds=1)
    assert np.isfinite(embeds).all() and embeds.shape[0] == feeds["pixel_values"].shape[0] // 4


@pytest.fixture(scope="module")
def onnx_fp32_session(perf_context) -> AuditedSession:
    return AuditedSession(build_onnx_vision(perf_context, ExportSettings("fp32")) / MODEL_NAME, OrtOptions())


def test_time_per_linear_flop_at_large_images(
    benchmark, onnx_fp32_session, perf_context, perf_size: str, size: str
) -> None:
    """Seconds per linear-layer TFLOP; at the large size also as a multiple of 448²'s
    (``cost_per_linear_flop_vs_448px``)."""
    grid = grids(perf_size)[size]
    feeds = _feeds(perf_context, grid)
    tower = perf_context.adapter.vision_tower(perf_context.skeleton())
    flops = vision_flops(tower, perf_context.adapter, torch.tensor([[1, *grid]]))
    benchmark.group = f"onnx vision time per linear FLOP [{perf_size}]"

    def run() -> list[np.ndarray]:
        return onnx_fp32_session.run(feeds, ["image_embeds"])

    # bounded: at real size 1344² is ~2 min a round on 2 cores; its first round is not discarded (arena growth is
    # counted against the large image, not for it)
    large_real = perf_size == "real" and size == "1344px"
    (embeds,) = benchmark.pedantic(run, rounds=1 if perf_size == "real" else 3, warmup_rounds=0 if large_real else 1)
    with track_memory() as memory:
        run()
    SECONDS_PER_LINEAR_TFLOP[size] = benchmark.stats.stats.median / (flops.linear / 1e12)
    benchmark.extra_info.update({
        "patches": int(feeds["pixel_values"].shape[0]),
        "linear_gflop": flops.linear / 1e9,
        "attention_overhead": flops.attention_overhead,
        "seconds_per_linear_tflop": SECONDS_PER_LINEAR_TFLOP[size],
        **memory.as_extra_info(),
    })  # fmt: skip
    if size != "448px" and "448px" in SECONDS_PER_LINEAR_TFLOP:
        benchmark.extra_info["cost_per_linear_flop_vs_448px"] = (
            SECONDS_PER_LINEAR_TFLOP[size] / SECONDS_PER_LINEAR_TFLOP["448px"]
        )
    assert np.isfinite(embeds).all()
