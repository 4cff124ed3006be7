"""Each AutoAWQ compatibility shim, the pre-flight check of AWQ-compatible dimensions, and what the AWQ build writes
besides the weights (the source's generation config) with the cache key that versions it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vlparity.paths.awq as awq_path
from vlparity.errors import UsageError
from vlparity.model_source import FIXTURES_DIR, resolve_model
from vlparity.paths.base import PathContext
from vlparity.quantize.awq import AwqSettings, check_quantizable, keep_source_generation_config, language_linears
from vlparity.quantize.awq_compat import MODULES_TO_NOT_CONVERT, awq_class_for, patch_autoawq

pytest.importorskip("awq", reason="AutoAWQ is not installed (pip install --no-deps autoawq==0.2.9)")


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(FIXTURES_DIR / "qwen2_5_vl")


def test_triton_gemm_is_disabled_on_cpu() -> None:
    import awq.modules.linear.gemm as gemm

    patch_autoawq()
    assert gemm.TRITON_AVAILABLE is False


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen2_vl"])
def test_layer_getters_point_at_the_transformers_5_layout(model, model_type: str) -> None:
    awq_cls = awq_class_for(model_type)
    if model_type == "qwen2_5_vl":
        assert awq_cls.get_model_layers(model) is model.model.language_model.layers


def test_move_embed_moves_the_transformers_5_modules(model) -> None:
    awq_class_for("qwen2_5_vl").move_embed(model, "cpu")  # raises AttributeError on the pre-4.52 layout


def test_modules_to_not_convert_match_transformers_5_prefixes(model) -> None:
    names = [name for name, _ in model.named_modules()]
    assert any(name.startswith("model.visual.") for name in names)
    assert all(any(name == p or name.startswith(p + ".") for name in names) for p in MODULES_TO_NOT_CONVERT)


def test_only_the_seven_lm_linears_per_layer_are_quantized(model) -> None:
    linears = language_linears(model)
    assert len(linears) == 7 * model.config.text_config.num_hidden_layers
    assert not [name for name in linears if "visual" in name or "lm_head" in name]


def test_group_size_that_does_not_divide_is_refused_before_any_work(model) -> None:
    with pytest.raises(UsageError, match="does not divide the in-features"):
        check_quantizable(model, 96)
    check_quantizable(model, 64)
    check_quantizable(model, 128)


def test_unsupported_family_for_awq() -> None:
    with pytest.raises(UsageError, match="no AutoAWQ class"):
        awq_class_for("llava")


def test_the_written_generation_config_is_the_sources_byte_for_byte(tmp_path: Path) -> None:
    """AutoAWQ's save_quantized writes do_sample = true; the checkpoint must decode as the source does."""
    source = FIXTURES_DIR / "qwen2_5_vl"
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": True, "eos_token_id": [2]}))
    keep_source_generation_config(source, tmp_path)
    assert (tmp_path / "generation_config.json").read_bytes() == (source / "generation_config.json").read_bytes()


def test_a_source_without_generation_config_gets_none_written(tmp_path: Path) -> None:
    source, written = tmp_path / "source", tmp_path / "awq"
    source.mkdir()
    written.mkdir()
    (written / "generation_config.json").write_text(json.dumps({"do_sample": True}))
    keep_source_generation_config(source, written)
    assert not (written / "generation_config.json").exists()


def test_checkpoints_of_an_older_build_layout_are_not_reused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The layout version is in the cache key: a checkpoint cached by older code (layout 1: AutoAWQ's do_sample =
    true) sits under another key, so the current build never finds it and writes a new one."""
    context = PathContext(resolve_model(FIXTURES_DIR / "qwen2_5_vl"), torch.device("cpu"), torch.float32, tmp_path)
    current = awq_path.awq_cache_dir(context, AwqSettings())
    monkeypatch.setattr(awq_path, "AWQ_LAYOUT", awq_path.AWQ_LAYOUT - 1)
    assert awq_path.awq_cache_dir(context, AwqSettings()) != current
