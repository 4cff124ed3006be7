"""Building each artefact once, from nothing (a fresh cache dir): split, ONNX exports, AWQ quantization.

One round each (``pedantic(rounds=1)``): these take seconds on the fixtures and minutes at real size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vlparity.export.onnx_vision import ExportSettings
from vlparity.export.split import write_split
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import build_onnx_vision
from vlparity.paths.original import load_original
from vlparity.perf.memory import track_memory

from .conftest import awq_available, awq_settings_for


def _tree_bytes(directory: Path) -> int:
    return sum(item.stat().st_size for item in directory.rglob("*") if item.is_file())


@pytest.fixture(scope="module")
def cold_context(perf_context: PathContext, tmp_path_factory: pytest.TempPathFactory) -> PathContext:
    """The run's model with an empty artefact cache of its own (shared by this module, so int8 reuses the fp32)."""
    return dataclasses.replace(perf_context, cache_dir=tmp_path_factory.mktemp("cold-cache"))


def _build_once(benchmark, perf_size: str, stage: str, build) -> Path:
    benchmark.group = f"build [{perf_size}]"
    benchmark.extra_info["stage"] = stage
    with track_memory() as memory:
        directory = benchmark.pedantic(build, rounds=1, iterations=1)
    benchmark.extra_info.update({**memory.as_extra_info(), "artefact_bytes": _tree_bytes(directory)})
    return directory


def test_build_split(benchmark, cold_context: PathContext, perf_size: str) -> None:
    def build() -> Path:
        model, processor = load_original(cold_context)
        target = cold_context.cache_dir / "split-benchmark"
        return write_split(model, processor, cold_context.adapter, cold_context.source, target)

    assert (_build_once(benchmark, perf_size, "split", build) / "manifest.json").is_file()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "bf16", "qdq"])
def test_build_onnx(benchmark, cold_context: PathContext, perf_size: str, precision: str) -> None:
    """fp32 is the torch.onnx export; fp16, int8, bf16 and qdq (static, calibrated on images; the default a8w8) are
    derived from that (already built) fp32 model."""
    if precision != "fp32":
        build_onnx_vision(cold_context, ExportSettings("fp32"))
    directory = _build_once(
        benchmark, perf_size, f"onnx {precision}", lambda: build_onnx_vision(cold_context, ExportSettings(precision))
    )
    assert (directory / "vision.onnx").is_file()


@pytest.mark.skipif(not awq_available(), reason="AutoAWQ / gptqmodel not installed (pip install '.[awq]')")
def test_build_awq(benchmark, cold_context: PathContext, perf_size: str) -> None:
    from vlparity.paths.awq import build_awq

    settings = awq_settings_for(perf_size)
    directory = _build_once(benchmark, perf_size, "awq quantize", lambda: build_awq(cold_context, settings))
    benchmark.extra_info["apply_clip"] = settings.apply_clip
    assert (directory / "config.json").is_file()
