"""--model resolution and adapter selection fail with errors that name the problem and the remedy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vlparity.adapters import ADAPTERS, adapter_for
from vlparity.errors import ModelNotFoundError, ModelWeightsError, UnsafePathError
from vlparity.model_source import DEFAULT_MODEL, INDEX_NAME, resolve_model


def test_default_is_the_bundled_qwen2_5_vl_fixture() -> None:
    source = resolve_model(None)
    assert source.directory == DEFAULT_MODEL and source.model_type == "qwen2_5_vl"


def test_unreadable_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="not valid JSON"):
        resolve_model(tmp_path)


@pytest.mark.parametrize("model_type", sorted(ADAPTERS))
def test_each_family_has_an_adapter(model_type: str) -> None:
    assert adapter_for(model_type).model_type == model_type


def test_content_hash_changes_when_a_weight_file_changes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a")
    before = resolve_model(tmp_path).content_hash()
    (tmp_path / "model.safetensors").write_bytes(b"bb")
    assert resolve_model(tmp_path).content_hash() != before


def _index(*shards: str) -> str:
    return json.dumps({"weight_map": {f"tensor{i}": shard for i, shard in enumerate(shards)}})


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        ({"pytorch_model.bin": "pickle"}, ModelWeightsError, "only pytorch_model.bin: pickle-based"),
        ({INDEX_NAME: _index("model.safetensors", "model-2.safetensors")}, ModelWeightsError, "not there: model-2"),
        ({INDEX_NAME: _index("../elsewhere.safetensors")}, UnsafePathError, "'../elsewhere.safetensors': not a plain"),
        ({INDEX_NAME: "[]"}, ModelWeightsError, f"{INDEX_NAME} is not a valid index"),
    ],
    ids=["pickle only", "a shard missing", "a shard outside the checkpoint", "a broken index"],
)
def test_weight_files_are_refused_before_any_load(tmp_path: Path, files: dict, error: type, message: str) -> None:
    (tmp_path / "config.json").write_text("{}")
    if "pytorch_model.bin" not in files:
        save_file({"tensor0": torch.zeros(2)}, tmp_path / "model.safetensors")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(error, match=message):
        resolve_model(tmp_path).check_weight_files()
