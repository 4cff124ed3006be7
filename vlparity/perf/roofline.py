"""The machine's own limits, measured in the same run as the benchmarks: GEMM peaks per precision.

A throughput figure means little alone; next to the measured peak of the same kind of arithmetic it reads as "how
close to the roof". fp32/bf16 peaks come from torch (oneDNN/MKL) and ONNX Runtime MatMul; the int8 peak from ONNX
Runtime's MatMulInteger (u8 × s8 → s32), the kernel ``quantize_dynamic`` models run.

On a shared VM the same GEMM measured minutes apart differs by up to 2× (measured here: ORT fp32 2048³ from 62 to
158 GFLOP/s in one idle hour), so a roof measured once at the start of a run can sit below what a later benchmark
achieves. ``RoofProbe`` therefore measures the roof right before and right after each benchmark it judges and keeps
every probe, so a report can show both the bracketing roof and how much it moved during the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

GEMM_SIZE = 2048
GEMM_KINDS = ("torch fp32", "ort fp32", "ort int8")


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


def torch_gemm_peak(dtype: torch.dtype, size: int = GEMM_SIZE, repeats: int = 5) -> GemmPeak:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    seconds = _best_seconds(lambda: torch.mm(a, b), repeats)
    return GemmPeak(f"torch {str(dtype).removeprefix('torch.')}", 2.0 * size**3 / seconds / 1e9, size)


def ort_gemm_peak(kind: str, size: int = GEMM_SIZE, repeats: int = 5) -> GemmPeak:
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


def gemm_peak(kind: str, size: int = GEMM_SIZE) -> GemmPeak:
    """One of ``GEMM_KINDS``."""
    if kind == "torch fp32":
        return torch_gemm_peak(torch.float32, size)
    if kind in ("ort fp32", "ort int8"):
        return ort_gemm_peak(kind.removeprefix("ort "), size)
    raise ValueError(f"unknown GEMM kind {kind!r}; expected one of {GEMM_KINDS}")


@dataclass
class RoofProbe:
    """Every GEMM peak measured during a run, per kind, so each benchmark is read against the roof nearest in time."""

    size: int = GEMM_SIZE
    measure: Callable[[str, int], GemmPeak] = gemm_peak
    probes: dict[str, list[float]] = field(default_factory=dict)

    def probe(self, kind: str) -> float:
        """Measure ``kind`` now; returns GFLOP/s and keeps it."""
        gflops = self.measure(kind, self.size).gflops
        self.probes.setdefault(kind, []).append(gflops)
        return gflops

    def bracket(self, kind: str) -> RoofBracket:
        """A context manager that probes ``kind`` right before and right after its body."""
        return RoofBracket(self, kind)

    def spread(self) -> dict[str, tuple[int, float, float]]:
        """Per kind: number of probes, lowest and highest GFLOP/s seen in the run."""
        return {kind: (len(values), min(values), max(values)) for kind, values in self.probes.items()}


@dataclass
class RoofBracket:
    """The probes of one kind taken around one benchmark (``probes``: before, after; GFLOP/s)."""

    roof: RoofProbe
    kind: str
    probes: list[float] = field(default_factory=list)

    def __enter__(self) -> RoofBracket:
        self.probes.append(self.roof.probe(self.kind))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.probes.append(self.roof.probe(self.kind))

    @property
    def gflops(self) -> float:
        """The roof this benchmark is read against: the higher probe."""
        return max(self.probes)
