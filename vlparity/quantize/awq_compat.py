"""Every adaptation AutoAWQ 0.2.9 needs to quantize Qwen VL models with transformers 5 on CPU — and nothing else.

AutoAWQ is deprecated upstream (last tested with transformers 4.51); it still implements the AWQ search we want.
Each patch below says why it exists; ``tests/unit/test_awq_compat.py`` checks each one.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from torch import nn

from vlparity.errors import UsageError

_patched = False
MISSING_AUTOAWQ = (
    "the AWQ paths need AutoAWQ and gptqmodel: pip install 'vlparity[awq]' && pip install --no-deps "
    "autoawq==0.2.9 (make test/make demo do this)."
)


def autoawq_version() -> str:
    """AutoAWQ's installed version, read from its metadata: importing AutoAWQ costs ~3 s (it pulls in much of
    transformers), and a warm cache needs only the version for its key."""
    try:
        return version("autoawq")
    except PackageNotFoundError as exc:
        raise UsageError(MISSING_AUTOAWQ) from exc


def _language_model(model: nn.Module) -> nn.Module:
    # transformers ≥ 4.52 moved the decoder from ``model.model`` to ``model.model.language_model``.
    return model.model.language_model


def _get_model_layers(model: nn.Module) -> nn.ModuleList:
    return _language_model(model).layers


def _move_embed(model: nn.Module, device: str) -> None:
    language = _language_model(model)
    language.embed_tokens = language.embed_tokens.to(device)
    language.rotary_emb = language.rotary_emb.to(device)
    model.model.visual = model.model.visual.to(device)


def import_autoawq() -> None:
    """Import AutoAWQ without its side effects on the process: its ``__init__`` turns DeprecationWarning on for every
    module (``simplefilter("default")``) and prints a deprecation notice on every run. vlparity uses the deprecated
    package knowingly (README); recording the warnings restores the filters afterwards and keeps the notice off."""
    try:
        with warnings.catch_warnings(record=True):
            import awq  # noqa: F401
    except ImportError as exc:
        raise UsageError(MISSING_AUTOAWQ) from exc


def patch_autoawq() -> None:
    """Apply the shims (idempotent)."""
    global _patched
    if _patched:
        return
    import_autoawq()
    import awq.modules.linear.gemm as gemm
    from awq.models.qwen2_5_vl import Qwen2_5_VLAWQForCausalLM
    from awq.models.qwen2vl import Qwen2VLAWQForCausalLM

    # 1. The CUDA build of torch ships triton, so AutoAWQ picks its triton GEMM, which fails on CPU tensors with
    #    "TypeError: '<' not supported between 'NoneType' and 'int'". Its pure-torch fallback is correct on CPU.
    gemm.TRITON_AVAILABLE = False
    # 2. The Qwen VL classes look for the decoder layers, embeddings, rotary embedding and vision tower at their
    #    pre-4.52 locations; point them at transformers 5's module layout.
    for cls in (Qwen2_5_VLAWQForCausalLM, Qwen2VLAWQForCausalLM):
        cls.get_model_layers = staticmethod(_get_model_layers)
        cls.move_embed = staticmethod(_move_embed)
    _patched = True


def _qwen3_vl_class() -> Any:
    """AutoAWQ 0.2.9 predates Qwen3-VL. Its text decoder layer has the Qwen2.5-VL linears (q/k/v/o, gate/up/down)
    with q/k RMS norms after the projections, so Qwen2.5-VL's scaling groups apply unchanged (the input-side scales
    fold into input_layernorm / post_attention_layernorm / up_proj exactly as there); only the layer class differs.
    Calibration is text-only, as for the other families: the DeepStack adds are not exercised."""
    from awq.models.qwen2_5_vl import Qwen2_5_VLAWQForCausalLM

    class Qwen3VLAWQForCausalLM(Qwen2_5_VLAWQForCausalLM):
        layer_type = "Qwen3VLTextDecoderLayer"

    return Qwen3VLAWQForCausalLM


def awq_class_for(model_type: str) -> Any:
    """AutoAWQ's model class for ``model_type`` (after patching)."""
    patch_autoawq()
    from awq.models.qwen2_5_vl import Qwen2_5_VLAWQForCausalLM
    from awq.models.qwen2vl import Qwen2VLAWQForCausalLM

    classes = {"qwen2_5_vl": Qwen2_5_VLAWQForCausalLM, "qwen2_vl": Qwen2VLAWQForCausalLM}
    if model_type == "qwen3_vl":
        return _qwen3_vl_class()
    if model_type not in classes:
        raise UsageError(f"AWQ: no AutoAWQ class for model_type {model_type!r}; supported: {', '.join(classes)}.")
    return classes[model_type]


# 3. AutoAWQ writes ``modules_to_not_convert = ["visual"]``; transformers 5 matches these names by prefix/suffix of the
#    full module name, so "visual" does not match "model.visual.*": every vision linear is then replaced by an empty
#    AWQ layer at load time, silently (NaN logits, tokens [0, 0, …]). We write the full prefixes instead.
MODULES_TO_NOT_CONVERT = ["model.visual", "lm_head"]
