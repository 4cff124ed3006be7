"""The machine's own limits, measured in the same run as the benchmarks: GEMM peaks per precision.

A throughput figure means little alone; next to the measured peak of the same kind of arithmetic it reads as "how
close to the roof". fp32/bf16 peaks come from torch (oneDNN/MKL) and ONNX Runtime MatMul; the int8 peak from ONNX
Runtime's MatMulInteger (u8 × s8 → s32), the kernel ``quantize_dynamic`` models run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

GEMM_SIZE = 2048


@dataclass(frozen=True)
class GemmPeak:
    kind: str  # e.g. "torch fp32", "ort int8"
    gflops: float
    size: int


def _best_seconds(run, repeats: int) -> float:
    run()  # warm-up: thread pools, packing, allocator
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def torch_gemm_peak(dtype: torch.dtype, size: int = GEMM_SIZE, repeats: int = 3) -> GemmPeak:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    seconds = _best_seconds(lambda: torch.mm(a, b), repeats)
    return GemmPeak(f"torch {str(dtype).removeprefix('torch.')}", 2.0 * size**3 / seconds / 1e9, size)


def ort_gemm_peak(kind: str, size: int = GEMM_SIZE, repeats: int = 3) -> GemmPeak:
    """``kind`` "fp32" (MatMul) or "int8" (MatMulInteger, uint8 activations × int8 weights)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if kind == "fp32":
        a = rng.standard_normal((size, size), dtype=np.float32)
        b = rng.standard_normal((size, size), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        types, out_type = (TensorProto.FLOAT, TensorProto.FLOAT), TensorProto.FLOAT
    elif kind == "int8":
        a = rng.integers(0, 255, (size, size), dtype=np.uint8)
        b = rng.integers(-127, 127, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        types, out_type = (TensorProto.UINT8, TensorProto.INT8), TensorProto.INT32
    else:
        raise ValueError(f"unknown GEMM kind {kind!r}")
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info(name, t, [size, size]) for name, t in zip("ab", types, strict=True)],
        [helper.make_tensor_value_info("y", out_type, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    seconds = _best_seconds(lambda: session.run(None, {"a": a, "b": b}), repeats)
    return GemmPeak(f"ort {kind}", 2.0 * size**3 / seconds / 1e9, size)
