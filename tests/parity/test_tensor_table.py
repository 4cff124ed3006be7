"""The per-tensor error table (issue #18): every tensor and weight of the graphs derived from the fp32 export
(onnx-bf16, onnx-qdq) stays within ``tensor_min_sqnr_db`` / ``weight_min_sqnr_db`` of the fp32 graph, on every fixture
sample. The planted faults it must catch, and name the block of, are in tests/parity/faults.py."""

from __future__ import annotations

import dataclasses

import pytest

from tests.samples import FIRST_PROMPT, IMAGES, VISION_SAMPLES, sample_ids
from vlparity.inputs import Sample
from vlparity.session import ParitySession
from vlparity.static_shape import StaticShape

DERIVED_PATHS = ("onnx-bf16", "onnx-qdq")


@pytest.mark.parametrize("sample", VISION_SAMPLES, ids=sample_ids(VISION_SAMPLES))
@pytest.mark.parametrize("path", DERIVED_PATHS)
def test_every_tensor_of_a_derived_graph_stays_near_the_fp32_graph(
    parity_session: ParitySession, path: str, sample: Sample
) -> None:
    if path not in parity_session.candidates:
        pytest.skip(f"{path} is not among --vlparity-paths")
    result = parity_session.check_tensors(path, sample)
    assert result.metrics["tensors_compared"] > 100 and result.metrics["weights_compared"] > 10
    assert result.passed, "\n".join(result.reasons)


def test_the_table_covers_every_block_of_the_tower(parity_session: ParitySession) -> None:
    table = parity_session.tensor_table("onnx-qdq", VISION_SAMPLES[0])
    depth = parity_session.context.source.config["vision_config"]["depth"]
    locations = [block.location for block in table.blocks()]
    assert locations[: depth + 2] == ["patch_embed", *(f"block {i}" for i in range(depth)), "merger"]


def test_a_fixed_shape_graph_is_tabled_over_every_image_it_runs(parity_session: ParitySession) -> None:
    """A fixed-shape graph runs once per image: the table keeps each tensor's worst run."""
    session = ParitySession(
        dataclasses.replace(parity_session.settings, paths=("original", "onnx-qdq"), static_shape=StaticShape(224, 224))
    )
    sample = Sample((IMAGES[0], IMAGES[3]), FIRST_PROMPT)
    assert len(session.runner("onnx-qdq").graph_feeds(sample)) == 2
    result = session.check_tensors("onnx-qdq", sample)
    assert result.passed, "\n".join(result.reasons)


def test_a_fixed_shape_opset_17_graph_keeps_its_tensors_placed_in_blocks(parity_session: ParitySession) -> None:
    """The 18→17 version converter drops node metadata; the export restores the module scopes the table places by."""
    session = ParitySession(
        dataclasses.replace(parity_session.settings, paths=("original", "onnx-qdq"), static_shape=StaticShape(224, 224))
    )
    table = session.tensor_table("onnx-qdq", Sample((IMAGES[0],), FIRST_PROMPT))
    depth = session.context.source.config["vision_config"]["depth"]
    assert {f"block {i}" for i in range(depth)} <= {block.location for block in table.blocks()}
    unscoped = {row.name for row in table.tensors if row.location.startswith("block") and row.scope == row.name}
    assert unscoped <= {f"block_{i}" for i in range(depth)}  # only the block outputs (graph outputs) lack a module
