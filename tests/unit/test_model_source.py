"""--model resolution and adapter selection fail with errors that name the problem and the remedy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlparity.adapters import ADAPTERS, adapter_for
from vlparity.errors import ModelNotFoundError, UnsupportedModelError
from vlparity.model_source import DEFAULT_MODEL, resolve_model


def test_default_is_the_bundled_qwen2_5_vl_fixture() -> None:
    source = resolve_model(None)
    assert source.directory == DEFAULT_MODEL and source.model_type == "qwen2_5_vl"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such directory"):
        resolve_model(tmp_path / "absent")


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"has no config\.json"):
        resolve_model(tmp_path)


def test_unreadable_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="not valid JSON"):
        resolve_model(tmp_path)


def test_unsupported_architecture_lists_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    source = resolve_model(tmp_path)
    with pytest.raises(UnsupportedModelError, match=r"'llava' is not supported\. Supported: qwen2_5_vl, qwen2_vl"):
        adapter_for(source.model_type)


@pytest.mark.parametrize("model_type", sorted(ADAPTERS))
def test_each_family_has_an_adapter(model_type: str) -> None:
    assert adapter_for(model_type).model_type == model_type


def test_content_hash_changes_when_a_weight_file_changes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a")
    before = resolve_model(tmp_path).content_hash()
    (tmp_path / "model.safetensors").write_bytes(b"bb")
    assert resolve_model(tmp_path).content_hash() != before
