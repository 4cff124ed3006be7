"""The ONNX export: one validated model for every image size, metadata, caching, and a third opinion."""

from __future__ import annotations

import dataclasses
import json

import onnx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.checkpoints import Structure, build_checkpoint
from tests.samples import FIRST_PROMPT, IMAGES
from tests.strategies import images
from vlparity import cli
from vlparity.adapters import adapter_for
from vlparity.errors import UnsupportedModelError
from vlparity.export import vision_graph
from vlparity.export.onnx_vision import MODEL_NAME, OPSET, ExportSettings, validate
from vlparity.inputs import Sample
from vlparity.model_source import FIXTURES_DIR
from vlparity.paths.onnx import OnnxPath, build_onnx_vision
from vlparity.session import ParitySession


@pytest.fixture(scope="module")
def onnx_session(parity_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(parity_session.settings, paths=("original", "onnx")))


@pytest.fixture(scope="module")
def onnx_runner(onnx_session: ParitySession) -> OnnxPath:
    return onnx_session.runner("onnx")


def test_export_passes_the_full_checker_and_shape_inference(onnx_runner: OnnxPath) -> None:
    model = validate(onnx_runner.onnx_dir / MODEL_NAME)
    assert any(opset.domain in ("", "ai.onnx") and opset.version == OPSET for opset in model.opset_import)


def test_metadata_records_source_versions_opset_and_input_contract(onnx_runner: OnnxPath) -> None:
    model = onnx.load(str(onnx_runner.onnx_dir / MODEL_NAME), load_external_data=False)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata["source_sha256"] == onnx_runner.context.source.content_hash()
    assert metadata["opset"] == str(OPSET)
    versions = json.loads(metadata["versions"].replace("'", '"'))
    assert {"torch", "transformers", "onnx"} <= set(versions)
    contract = json.loads(metadata["input_contract"])
    assert contract["inputs"][0]["name"] == "pixel_values"
    assert contract["outputs"][0]["name"] == "image_embeds"
    assert all(isinstance(dim, str) for dim in contract["inputs"][0]["shape"][:1]), "patch count must be dynamic"


def test_one_model_serves_several_images_in_one_prompt(onnx_session: ParitySession) -> None:
    sample = Sample((IMAGES[0], IMAGES[3], IMAGES[5]), "Compare the images.")
    results = onnx_session.check_vision("onnx", sample)
    assert len(results) == 3 and all(r.passed for r in results), [r.reasons for r in results]


@given(specs=st.lists(images(contents=("noise",)), min_size=1, max_size=2))
def test_any_image_size_the_processor_accepts(onnx_session: ParitySession, tmp_path_factory, specs) -> None:
    folder = tmp_path_factory.mktemp("sizes")
    paths = tuple(spec.write(folder) for spec in specs)
    results = onnx_session.check_vision("onnx", Sample(paths, FIRST_PROMPT))
    assert all(r.passed for r in results), [r.reasons for r in results]


def test_reference_evaluator_agrees_with_pytorch(onnx_session: ParitySession, onnx_runner: OnnxPath) -> None:
    sample = Sample((IMAGES[3],), FIRST_PROMPT)  # small image: onnx.reference is slow
    third = onnx_runner.reference_evaluator_embeddings(sample).embeddings
    reference = onnx_session.embeddings("original", sample)
    assert len(third) == 1
    assert abs(third[0] - reference[0]).max() <= onnx_session.tolerance("onnx").vision_atol


def test_second_build_reuses_the_cached_export(onnx_runner: OnnxPath) -> None:
    again = OnnxPath(onnx_runner.context)
    again.prepare()
    assert again.onnx_dir == onnx_runner.onnx_dir
    assert "export" not in again.timer.records or again.timer.records["export"][0].seconds < 1.0


def test_precision_variants_are_separate_validated_artefacts(onnx_runner: OnnxPath) -> None:
    directories = {p: build_onnx_vision(onnx_runner.context, ExportSettings(p)) for p in ("fp32", "fp16", "int8")}
    assert len(set(directories.values())) == 3
    sizes = {p: (d / MODEL_NAME).stat().st_size for p, d in directories.items()}
    assert sizes["fp16"] < sizes["fp32"] and sizes["int8"] < sizes["fp32"]


ARCHITECTURES = [  # merge sizes, window sizes and full-attention layouts other than the fixtures' (merge 2, window 112)
    Structure("qwen2_5_vl", merge_size=1, vision_depth=2, fullatt_block_indexes=(0,), window_size=56),
    Structure("qwen2_5_vl", merge_size=3, vision_depth=2, fullatt_block_indexes=(), window_size=168),
    Structure("qwen2_5_vl", vision_depth=2, fullatt_block_indexes=(1,), window_size=100),  # not a multiple of 28 px
    Structure("qwen2_vl", merge_size=3, vision_depth=1),
]


@pytest.mark.parametrize("structure", ARCHITECTURES, ids=[s.label for s in ARCHITECTURES])
def test_any_merge_size_window_and_full_attention_layout_exports_and_matches(
    structure: Structure, parity_session: ParitySession
) -> None:
    model = build_checkpoint(structure, parity_session.settings.cache_dir)
    session = ParitySession(dataclasses.replace(parity_session.settings, model=str(model), paths=("original", "onnx")))
    results = session.check_vision("onnx", Sample((IMAGES[0], IMAGES[5]), FIRST_PROMPT))
    assert len(results) == 2 and all(r.passed for r in results), [r.reasons for r in results]


def test_a_vision_tower_the_exporter_cannot_rebuild_is_refused_before_export() -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(FIXTURES_DIR / "qwen2_5_vl").vision_config
    adapter = adapter_for("qwen2_5_vl")
    with torch.device("meta"):
        vision = adapter.vision_class._from_config(config)
    del vision.blocks[1].attn.qkv  # as custom code with separate q/k/v projections would have it
    with pytest.raises(UnsupportedModelError, match=r"cannot be exported to ONNX.*blocks\.1\.attn\.qkv"):
        adapter.export_graph(vision)


def test_the_command_line_refuses_an_unexportable_tower_with_exit_2_and_one_line(
    parity_session: ParitySession, tmp_path, monkeypatch, capsys
) -> None:
    model = build_checkpoint(ARCHITECTURES[-1], parity_session.settings.cache_dir)
    parts = {**vision_graph.EXPORTED_PARTS, "attention": ("qkv", "proj", "num_heads", "head_dim", "q_norm")}
    monkeypatch.setattr(vision_graph, "EXPORTED_PARTS", parts)  # a part no Qwen VL tower has
    code = cli.main(["export-onnx", "--model", str(model), "--output-dir", str(tmp_path)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vlparity: error")]
    assert code == 2
    assert len(errors) == 1 and "cannot be exported to ONNX" in errors[0] and "attn.q_norm" in errors[0], errors
