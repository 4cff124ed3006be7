"""GPU benchmarks: the original path's stages on CUDA with the allocator's peak in ``extra_info``.

Skipped (with the reason) without a GPU; with ``--device cuda`` every benchmark in test_stages.py runs there too.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vlparity.inputs import Sample
from vlparity.paths import create_path
from vlparity.paths.base import PathContext
from vlparity.perf.memory import track_memory
from vlparity.vision_features import VisionFeatures

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_cuda_vision_encode(benchmark, perf_context: PathContext, perf_images, dtype: torch.dtype) -> None:
    context = dataclasses.replace(perf_context, device=torch.device("cuda"), dtype=dtype)
    runner = create_path("original", context)
    runner.prepare()
    inputs = runner.preprocess(Sample((next(iter(perf_images.values())),), "x"))

    def encode() -> VisionFeatures[torch.Tensor]:
        features = runner.vision_encode(inputs)
        torch.cuda.synchronize()
        return features

    benchmark.group = "vision encode [cuda]"
    benchmark.extra_info.update({"path": "original", "dtype": str(dtype)})
    features = benchmark.pedantic(encode, rounds=5, warmup_rounds=1)
    with track_memory(context.device) as memory:
        encode()
    benchmark.extra_info.update(memory.as_extra_info())
    assert memory.cuda_peak and memory.cuda_peak > 0
    assert all(torch.isfinite(embedding).all() for embedding in features.embeddings)
