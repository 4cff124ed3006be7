"""The split artefact: safetensors only (no pickle), a complete manifest, and an LM that holds no vision weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.checkpoints import Structure, build_checkpoint
from vlparity.manifest import MANIFEST_NAME
from vlparity.model_source import resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.original import load_source_model
from vlparity.paths.split import SplitPath, VisionTowerRemoved


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> SplitPath:
    context = PathContext(resolve_model(None), torch.device("cpu"), torch.float32, tmp_path_factory.mktemp("cache"))
    runner = SplitPath(context)
    runner.prepare()
    return runner


def test_layout_is_vision_language_and_manifest(split: SplitPath) -> None:
    root = split.artefact_dir
    assert (root / "vision" / "model.safetensors").is_file() and (root / "vision" / "config.json").is_file()
    assert (root / "vision" / "preprocessor_config.json").is_file()
    for name in ("model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"):
        assert (root / "language" / name).is_file(), name


def test_no_pickle_files_anywhere(split: SplitPath) -> None:
    suffixes = {path.suffix for path in split.artefact_dir.rglob("*") if path.is_file()}
    assert not suffixes & {".pt", ".pth", ".bin", ".pkl", ".pickle"}


def test_manifest_records_every_file_versions_and_source(split: SplitPath) -> None:
    manifest = json.loads((split.artefact_dir / MANIFEST_NAME).read_text())
    files = {p.relative_to(split.artefact_dir).as_posix() for p in split.artefact_dir.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {MANIFEST_NAME}
    assert all(len(digest) == 64 for digest in manifest["files"].values())
    assert {"torch", "transformers", "safetensors"} <= set(manifest["versions"])
    assert Path(manifest["source_model"]).name == "qwen2_5_vl" and len(manifest["source_sha256"]) == 64


def test_language_model_holds_no_vision_weights(split: SplitPath) -> None:
    assert isinstance(split.language.model.visual, VisionTowerRemoved)
    assert not [key for key in split.language.state_dict() if "visual" in key]
    assert not any(tensor.is_meta for tensor in split.language.state_dict().values())
    assert not any(buffer.is_meta for buffer in split.language.buffers())


def test_language_weights_file_has_no_vision_tensors(split: SplitPath) -> None:
    from safetensors import safe_open

    with safe_open(split.artefact_dir / "language" / "model.safetensors", "pt") as handle:
        assert not [key for key in handle.keys() if "visual" in key]  # noqa: SIM118


def test_second_prepare_reuses_the_cached_artefact(split: SplitPath) -> None:
    again = SplitPath(split.context)
    again.prepare()
    assert again.artefact_dir == split.artefact_dir
    assert "build" not in again.timer.records


@pytest.fixture(scope="module")
def tied_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[SplitPath, nn.Module]:
    """A split of a checkpoint with ``tie_word_embeddings`` (as Qwen2.5-VL-3B and Qwen2-VL-2B), and its original."""
    cache = tmp_path_factory.mktemp("tied")
    source = resolve_model(build_checkpoint(Structure("qwen2_5_vl", tied=True, vision_depth=1), cache))
    runner = SplitPath(PathContext(source, torch.device("cpu"), torch.float32, cache))
    runner.prepare()
    return runner, load_source_model(runner.context, torch.float32)


def test_tied_embeddings_are_saved_once_and_retied_on_load(tied_split: tuple[SplitPath, nn.Module]) -> None:
    from safetensors import safe_open

    split, _ = tied_split
    with safe_open(split.artefact_dir / "language" / "model.safetensors", "pt") as handle:
        assert "lm_head.weight" not in handle.keys()  # noqa: SIM118
    assert split.language.lm_head.weight is split.language.model.language_model.embed_tokens.weight


def test_tied_language_model_round_trips_bit_exact(tied_split: tuple[SplitPath, nn.Module]) -> None:
    split, original = tied_split
    reloaded = split.language.state_dict()
    expected = {k: v for k, v in original.state_dict().items() if not k.startswith("model.visual.")}
    assert reloaded.keys() == expected.keys()
    assert all(torch.equal(reloaded[key], expected[key]) for key in expected)


def test_the_bundle_language_script_reties_a_tied_split(tied_split: tuple[SplitPath, nn.Module]) -> None:
    from vlparity.bundle.templates import language_inference

    split, original = tied_split
    model = language_inference.load_float_model(split.artefact_dir / "language", torch.device("cpu"), "sdpa")
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert torch.equal(model.lm_head.weight, original.lm_head.weight)


def test_a_checkpoint_that_says_tied_but_holds_its_own_lm_head_keeps_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """transformers does not tie weights the checkpoint holds apart (it warns): the split must not tie them either."""
    from safetensors.torch import load_file, save_file

    cache = tmp_path_factory.mktemp("untied-weights")
    tied = build_checkpoint(Structure("qwen2_5_vl", tied=True, vision_depth=1), cache)
    model_dir = cache / "own-lm-head"
    shutil.copytree(tied, model_dir, ignore=shutil.ignore_patterns("manifest.json"))
    weights = load_file(model_dir / "model.safetensors")
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"] * 2
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    split = SplitPath(PathContext(resolve_model(model_dir), torch.device("cpu"), torch.float32, cache))
    split.prepare()
    original = load_source_model(split.context, torch.float32)
    assert split.language.lm_head.weight is not split.language.model.language_model.embed_tokens.weight
    assert torch.equal(split.language.lm_head.weight, original.lm_head.weight)
