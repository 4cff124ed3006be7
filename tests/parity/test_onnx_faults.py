"""Planted ONNX faults fail the gate and the report names the first diverging vision block."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from tests.parity.samples import FIRST_PROMPT, IMAGES
from vlparity.export.onnx_vision import MODEL_NAME
from vlparity.hashing import tree_sha256
from vlparity.inputs import Sample
from vlparity.manifest import MANIFEST_NAME
from vlparity.paths.onnx import OnnxPath
from vlparity.session import ParitySession

SAMPLE = Sample((IMAGES[1],), FIRST_PROMPT)  # 320x240: several windows


class SwappedWindowIndex(OnnxPath):
    """Feeds the graph a window index with two entries swapped (an export-input bug)."""

    def feeds(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> dict[str, np.ndarray]:
        feeds = super().feeds(pixel_values, grid_thw)
        feeds["window_index"] = feeds["window_index"].copy()
        feeds["window_index"][[0, -1]] = feeds["window_index"][[-1, 0]]
        return feeds


def corrupt_block_weight(onnx_dir: Path, block: int) -> str:
    """Scale one weight of vision block ``block`` inside the ONNX file by 1.01 and re-sign the manifest."""
    model = onnx.load(str(onnx_dir / MODEL_NAME))
    initializer = next(
        init for init in model.graph.initializer if f"blocks.{block}." in init.name and "mlp" in init.name
    )
    initializer.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(initializer) * 1.01, initializer.name))
    onnx.save(model, str(onnx_dir / MODEL_NAME))
    import json

    manifest = json.loads((onnx_dir / MANIFEST_NAME).read_text())
    manifest["files"] = {k: v for k, v in tree_sha256(onnx_dir).items() if k != MANIFEST_NAME}
    (onnx_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    return initializer.name


@pytest.fixture
def session(parity_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(parity_session.settings, paths=("original", "onnx")))


def test_wrong_window_index_fails_and_names_the_first_block(session: ParitySession) -> None:
    if session.context.source.model_type != "qwen2_5_vl":
        pytest.skip("only Qwen2.5-VL has window indices")
    session.use_runner(SwappedWindowIndex(session.context))
    (result,) = session.check_vision("onnx", SAMPLE)
    assert not result.passed
    assert result.metrics["first_diverging_block"] == 0
    assert any("first diverging vision block: 0" in reason for reason in result.reasons)


def test_corrupted_block_weight_names_that_block(session: ParitySession, tmp_path: Path) -> None:
    genuine = session.runner("onnx")
    faulty_dir = tmp_path / "onnx"
    shutil.copytree(genuine.onnx_dir, faulty_dir)
    corrupt_block_weight(faulty_dir, block=2)
    session.use_runner(OnnxPath(session.context, onnx_dir=faulty_dir))
    (result,) = session.check_vision("onnx", SAMPLE)
    assert not result.passed
    assert result.metrics["first_diverging_block"] == 2
    assert result.metrics["attribution"] == "exporter"  # onnx.reference runs the same wrong weights
