"""Machine-normalised benchmark figures: every timed round is paired with a fixed reference workload timed right
before it, and the gated figure is the median of the per-round ratios (benchmark seconds / reference seconds).

On a shared 2-core VM the same benchmark moves 15–87 % between back-to-back runs at one commit (docs/perf-notes.md):
steal time, frequency and cache contention slow *everything* for a while. A reference of the same kind of work,
timed interleaved with the rounds (within milliseconds of each one), slows down with it, so the ratio cancels what is
machine-wide and keeps what the code changed. Three kinds, by what dominates the benchmarked call:

- ``python``: a pure-Python loop (integer arithmetic, list and dict operations) — preprocessing;
- ``torch``: a chain of small fp32 matmuls + tanh (dispatch-bound, as the tiny model's layers) — torch stages;
- ``ort``: the same chain as one ONNX Runtime session — the ONNX vision encoders.

Each takes about a millisecond on the development machine; the work is fixed (never calibrated at run time), so
the ratio means the same thing in every run.

Two figures: ``normalised`` (median of the per-round ratios) and ``normalised_min`` (the fastest round over the fastest
reference round), which the gate compares. Noise on a shared VM only ever adds time, and on this 2-core VM it also
shifted a whole benchmark's rounds for a run (e.g. prefill +30 % in every round of one run, the reference unmoved) while
the fastest round stayed within 7 %: over 5 back-to-back runs the median-based figure raised 1 false alarm at a 20 %
limit, the minimum-based one none (docs/perf-notes.md). A slowdown of the code itself slows the fastest round too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

REFERENCE_KINDS = ("python", "torch", "ort")
_CHAIN = 12  # matmul + tanh steps in the torch and ort references
_ROWS, _WIDTH = 64, 256


def _python_reference() -> Callable[[], Any]:
    def run() -> int:
        table: dict[int, int] = {}
        values = []
        total = 0
        for i in range(6000):
            total = (total * 31 + i) % 1_000_003
            values.append(total)
            table[i & 255] = total
        return total + len(table) + sum(values[::97])

    return run


def _torch_reference() -> Callable[[], Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(_ROWS, _WIDTH, generator=generator)
    weight = torch.randn(_WIDTH, _WIDTH, generator=generator) / _WIDTH**0.5

    def run() -> Any:
        y = x
        with torch.inference_mode():
            for _ in range(_CHAIN):
                y = torch.tanh(y @ weight)
        return y

    return run


def _ort_reference(threads: int = 0) -> Callable[[], Any]:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((_WIDTH, _WIDTH)) / _WIDTH**0.5).astype(np.float32)
    nodes, previous = [], "x"
    for step in range(_CHAIN):
        nodes += [
            helper.make_node("MatMul", [previous, "w"], [f"m{step}"]),
            helper.make_node("Tanh", [f"m{step}"], [f"t{step}"]),
        ]
        previous = f"t{step}"
    graph = helper.make_graph(
        nodes,
        "reference",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [_ROWS, _WIDTH])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [_ROWS, _WIDTH])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the chain stays as written
    options.intra_op_num_threads = threads  # 0: ORT's default (all cores), as the benchmarked sessions
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the benchmarked sessions
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"x": rng.standard_normal((_ROWS, _WIDTH)).astype(np.float32)}
    return lambda: session.run(None, feeds)


_FACTORIES = {"python": _python_reference, "torch": _torch_reference, "ort": _ort_reference}
_CACHE: dict[tuple[str, int], Callable[[], Any]] = {}


def reference_workload(kind: str, ort_threads: int = 0) -> Callable[[], Any]:
    """The (cached, warmed-up) reference of ``kind``, one of ``REFERENCE_KINDS``; the ``ort`` one runs with
    ``ort_threads`` intra-op threads (0: ORT's default), as the sessions it stands beside (torch's follow
    ``torch.set_num_threads``)."""
    if kind not in _FACTORIES:
        raise ValueError(f"unknown reference kind {kind!r}; expected one of {REFERENCE_KINDS}")
    key = (kind, ort_threads if kind == "ort" else 0)
    if key not in _CACHE:
        run = _ort_reference(ort_threads) if kind == "ort" else _FACTORIES[kind]()
        for _ in range(3):
            run()
        _CACHE[key] = run
    return _CACHE[key]


def relative_iqr(values: Sequence[float]) -> float:
    """Interquartile range over the median (0 for fewer than 2 values)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(values)


@dataclass
class Interleaved:
    """Times the reference of ``kind`` right before every round: pass :meth:`setup` (or :meth:`setup_with`) as
    pytest-benchmark's pedantic ``setup`` (which runs untimed before each warm-up and timed round), then read
    :meth:`figure` with the rounds' durations."""

    kind: str
    ort_threads: int = 0
    reference_s: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._run = reference_workload(self.kind, self.ort_threads)

    def _time_reference(self) -> None:
        started = time.perf_counter()
        self._run()
        self.reference_s.append(time.perf_counter() - started)

    def setup(self) -> None:
        self._time_reference()

    def setup_with(self, inner: Callable[[], Any]) -> Callable[[], Any]:
        """A setup that times the reference, then returns what ``inner`` (the benchmark's own setup) returns."""

        def setup() -> Any:
            self._time_reference()
            return inner()

        return setup

    def figure(self, round_s: Sequence[float], *, gated: bool) -> dict[str, Any]:
        """``extra_info`` entries: per round benchmark / reference (the last ``len(round_s)`` references pair with
        the timed rounds; earlier ones belonged to warm-up rounds)."""
        if not round_s:
            raise ValueError("no timed rounds")
        references = self.reference_s[-len(round_s) :]
        if len(references) != len(round_s):
            raise ValueError(f"{len(round_s)} rounds but {len(references)} reference timings")
        ratios = [bench / ref for bench, ref in zip(round_s, references, strict=True)]
        return {
            "gated": gated,
            "reference": self.kind,
            "reference_median_s": statistics.median(references),
            "normalised_min": min(round_s) / min(references),  # what the gate compares
            "normalised": statistics.median(ratios),
            "normalised_rel_iqr": relative_iqr(ratios),
            "normalised_rounds": len(ratios),
            "reference_rounds_s": references,  # raw, paired with stats.data of --benchmark-json
        }


def planted_slowdown(run: Callable[[], Any], factor: float) -> Callable[[], Any]:
    """``run`` made ``factor`` times slower (test-only: proves the gate can fail): after each call, the CPU spins for
    ``factor - 1`` times that call's own duration."""
    if factor < 1:
        raise ValueError(f"a slowdown factor is at least 1, not {factor}")

    def slowed() -> Any:
        started = time.perf_counter()
        result = run()
        spin_until = time.perf_counter() + (factor - 1) * (time.perf_counter() - started)
        while time.perf_counter() < spin_until:
            pass
        return result

    return slowed
