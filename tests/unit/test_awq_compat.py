"""Each AutoAWQ compatibility shim, and the pre-flight check of AWQ-compatible dimensions."""

from __future__ import annotations

import pytest

from vlparity.errors import UsageError
from vlparity.model_source import FIXTURES_DIR
from vlparity.quantize.awq import check_quantizable, language_linears
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
