"""NPU-shaped vision variants (issue #18): the BF16 simulation rounds exactly where it says it does; static QDQ is
calibrated, says which quantizer ran, and refuses what it cannot write."""

from __future__ import annotations

import logging
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from vlparity.errors import ArtefactError, UsageError
from vlparity.export import qdq
from vlparity.export.bf16 import simulate_bf16
from vlparity.export.qdq import QDQ_CONFIGS

SHAPE = (3, 5)
finite = hnp.arrays(
    np.float32, SHAPE, elements=st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
)


def _bf16(values: np.ndarray) -> np.ndarray:
    """The oracle: numpy float32 → ml_dtypes bfloat16 (round to nearest even) → float32."""
    return values.astype(ml_dtypes.bfloat16).astype(np.float32)


def _two_op_model(weight: np.ndarray) -> onnx.ModelProto:
    """y = x * w + x: two elementwise ops, each correctly rounded in float32 by ORT and numpy alike."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "x"], ["y"])],
        "two_ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray, level: ort.GraphOptimizationLevel) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


@settings(max_examples=60, deadline=None)
@given(x=finite, weight=finite)
def test_simulated_graph_equals_numpy_bf16_rounding(x: np.ndarray, weight: np.ndarray) -> None:
    """Input, weight and each op's output rounded to bf16, as numpy computes it; also after ORT's full graph
    optimization, which must not fold the Cast pairs away."""
    model = simulate_bf16(_two_op_model(weight))
    onnx.checker.check_model(model, full_check=True)
    xr, wr = _bf16(x), _bf16(weight)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = _bf16(_bf16(xr * wr) + xr)
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        np.testing.assert_array_equal(_run(model, x, level), expected)


def test_integer_tensors_and_names_are_kept() -> None:
    """Only float values are rounded; graph inputs and outputs keep their names (the runner feeds and reads them)."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "index"], ["y"], axis=0)],
        "gather",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2]),
            helper.make_tensor_value_info("index", TensorProto.INT64, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
    )
    model = simulate_bf16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    casts = [node for node in model.graph.node if node.op_type == "Cast"]
    assert len(casts) == 4  # x in, y out: one pair each; the int64 index untouched
    assert [v.name for v in model.graph.input] == ["x", "index"] and [v.name for v in model.graph.output] == ["y"]


def test_subgraphs_are_refused() -> None:
    branch = helper.make_graph([], "branch", [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)],
        "if",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ArtefactError, match=r"subgraphs \(If\)"):
        simulate_bf16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _matmul_model() -> onnx.ModelProto:
    """y = x @ w: one quantizable op with a weight."""
    weight = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


FEEDS = [
    {"x": np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)}
    for seed, rows in enumerate((3, 5, 9))
]


@pytest.fixture
def without_quark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qdq, "quark_available", lambda: False)


@pytest.mark.parametrize("config", QDQ_CONFIGS)
def test_the_fallback_quantizes_statically_and_says_so(
    config: str, tmp_path: Path, without_quark: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Without amd-quark, ORT's quantize_static writes a QDQ graph calibrated on the feeds (every feed size), and both
    the log and the returned quantizer name (stamped into the artefact, shown in the report) say it was the fallback."""
    onnx.save(_matmul_model(), tmp_path / "fp32.onnx")
    with caplog.at_level(logging.WARNING):
        name = qdq.quantize_qdq(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", FEEDS, config)
    assert name.startswith("onnxruntime.quantization.quantize_static ") and name.endswith("(fallback)")
    assert qdq.FALLBACK_NOTICE in caplog.text
    model = onnx.load(tmp_path / "qdq.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    scales = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_scale")]
    if config == "xint8":
        assert all(np.log2(s) == np.round(np.log2(s)) for s in scales)  # powers of two
    session = ort.InferenceSession(str(tmp_path / "qdq.onnx"), providers=["CPUExecutionProvider"])
    x = FEEDS[1]["x"]
    reference = x @ numpy_helper.to_array(_matmul_model().graph.initializer[0])
    assert np.abs(session.run(["y"], {"x": x})[0] - reference).max() < 0.1 * np.abs(reference).max()


def test_quark_is_chosen_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With amd-quark importable, its quantizer runs with the selected configuration and the name says Quark."""
    calls = []
    monkeypatch.setattr(qdq, "quark_available", lambda: True)
    monkeypatch.setattr(qdq.importlib.metadata, "version", lambda name: {"amd-quark": "0.13"}[name])
    monkeypatch.setattr(qdq, "_quantize_with_quark", lambda *args: calls.append(args))
    name = qdq.quantize_qdq(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", FEEDS, "xint8")
    assert name == "amd-quark 0.13"
    assert [(args[0], args[3]) for args in calls] == [(tmp_path / "fp32.onnx", "xint8")]


def test_a16w8_at_a_fixed_shape_needs_quark(without_quark: None) -> None:
    qdq.check_qdq_config("a8w8", fixed_shape=True)
    qdq.check_qdq_config("a16w8", fixed_shape=False)
    with pytest.raises(UsageError, match=r"a16w8 with --static-shape: .* install amd-quark"):
        qdq.check_qdq_config("a16w8", fixed_shape=True)
