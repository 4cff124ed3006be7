"""ONNX files past the external-data threshold keep their weights in ``<name>.data`` (protobuf caps files at 2 GiB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vlparity.export import onnx_vision
from vlparity.export.onnx_vision import save_onnx

WEIGHT = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096


def _matmul_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(WEIGHT, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((1, 64), np.float32)})[0]


@pytest.mark.parametrize("threshold, external", [(1 << 30, False), (1024, True)])
def test_weights_go_to_a_data_file_only_beyond_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int, external: bool
) -> None:
    monkeypatch.setattr(onnx_vision, "EXTERNAL_DATA_BYTES", threshold)
    path = tmp_path / "vision.onnx"
    save_onnx(_matmul_model(), path)
    assert (tmp_path / "vision.onnx.data").is_file() == external
    np.testing.assert_array_equal(_run(path), np.ones((1, 64), np.float32) @ WEIGHT)
