"""An ORT-optimized ONNX vision model (contrib ops that only ONNX Runtime implements) with a real fault: the
onnx.reference third opinion says it does not apply, and the verdict is still printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch

from tests.parity.faults import SAMPLE, in_block, scale_onnx_weight
from vlparity.cli import EXIT_PARITY_FAILURE, main
from vlparity.export.onnx_vision import MODEL_NAME, ExportSettings
from vlparity.model_source import resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import build_onnx_vision
from vlparity.session import DEFAULT_CACHE_DIR

CACHE = Path(__file__).resolve().parents[2] / DEFAULT_CACHE_DIR


def ort_optimized_with_a_fault(folder: Path) -> Path:
    """The fixture's genuine export with one block-2 MLP weight ×1.01, then optimized offline by ORT itself
    (``SessionOptions.optimized_model_filepath``), which writes contrib ops such as ``com.microsoft.FusedMatMul``."""
    context = PathContext(resolve_model(None), torch.device("cpu"), torch.float32, CACHE)
    planted = folder / "planted.onnx"
    shutil.copyfile(build_onnx_vision(context, ExportSettings("fp32")) / MODEL_NAME, planted)
    scale_onnx_weight(planted, in_block(2, "mlp"), 1.01)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(folder / "optimized" / MODEL_NAME)
    (folder / "optimized").mkdir()
    onnxruntime.InferenceSession(str(planted), options, providers=["CPUExecutionProvider"])
    return folder / "optimized" / MODEL_NAME


def test_contrib_ops_make_the_third_opinion_not_applicable_and_the_verdict_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    optimized = ort_optimized_with_a_fault(tmp_path)
    assert any(node.domain == "com.microsoft" for node in onnx.load(str(optimized)).graph.node)
    argv = ["run-onnx", "--onnx-vision", str(optimized), "--image", str(SAMPLE.images[0]), "--max-new-tokens", "2"]
    code = main([*argv, "--device", "cpu", "--output-dir", str(CACHE)])
    out = capsys.readouterr().out
    assert code == EXIT_PARITY_FAILURE
    assert "FAIL onnx vision" in out and "overall: FAIL" in out
    assert "onnx.reference third opinion: not applicable (contrib ops: com.microsoft.FusedMatMul" in out
