"""The AWQ checkpoint: standard format, ≤ 0.30× fp16 bytes, and the genuine checkpoint passes with both of its errors
reported. Its planted faults (vision quantized by mistake, corrupted scales, a wrong group size, a kernel bug) are in
test_fault_injection.py, with every other path's."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.inputs import Sample
from vlparity.paths.language import teacher_forced_logits
from vlparity.quantize.awq import language_linears, load_awq, quantized_modules
from vlparity.quantize.awq_compat import MODULES_TO_NOT_CONVERT
from vlparity.session import ParitySession

# find_spec, not importorskip: importing AutoAWQ costs ~3 s, and with a warm cache the gate never needs it.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("awq") is None, reason="AutoAWQ is not installed (pip install --no-deps autoawq==0.2.9)"
)
SAMPLE = Sample((IMAGES[2],), FIRST_PROMPT)


@pytest.fixture(scope="module")
def session(parity_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(parity_session.settings, paths=("original", "awq")))


@pytest.fixture(scope="module")
def awq_dir(session: ParitySession) -> Path:
    return session.runner("awq").awq_dir


def test_checkpoint_is_standard_awq(awq_dir: Path, session: ParitySession) -> None:
    config = json.loads((awq_dir / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "awq" and config["bits"] == 4 and config["zero_point"] is True
    assert config["version"] == "gemm" and config["modules_to_not_convert"] == MODULES_TO_NOT_CONVERT
    with safe_open(awq_dir / "model.safetensors", "pt") as handle:
        keys = list(handle.keys())
    packed = {key[: -len(".qweight")] for key in keys if key.endswith(".qweight")}
    model = session.runner("original").model
    assert packed == set(language_linears(model)), "exactly the LM decoder linears are packed"
    assert "lm_head.weight" in keys and any(k.startswith("model.visual.") and k.endswith(".weight") for k in keys)


def test_quantized_linears_take_at_most_030_of_fp16_bytes(awq_dir: Path, session: ParitySession) -> None:
    tensors = load_file(awq_dir / "model.safetensors")
    linears = language_linears(session.runner("original").model)
    awq_bytes = sum(
        tensors[f"{name}.{part}"].numel() * tensors[f"{name}.{part}"].element_size()
        for name in linears
        for part in ("qweight", "qzeros", "scales")
    )
    fp16_bytes = sum(linear.weight.numel() * 2 for linear in linears.values())
    assert awq_bytes / fp16_bytes <= 0.30, awq_bytes / fp16_bytes


def test_genuine_awq_passes_and_reports_both_errors(session: ParitySession) -> None:
    result = session.check_tokens("awq", SAMPLE)
    assert result.passed, result.reasons
    assert 0 < result.metrics["kernel_max_abs_logit"] <= session.tolerance("awq").kernel_max_abs_logit
    assert 0 < result.metrics["kl_max"] <= session.tolerance("awq").kl_max


def test_bf16_gemm_activations_reach_the_int4_kernel_within_bf16_rounding_of_the_twin(
    awq_dir: Path, session: ParitySession
) -> None:
    """The CPU fast path benchmarked in tests/perf: a float32 LM whose AWQ linears are fed bfloat16 (every one of
    them), with finite logits within bf16 rounding of the dequantized twin (measured ≤ 0.049 max |Δlogit|)."""
    model = load_awq(awq_dir, torch.device("cpu"), torch.float32, gemm_activations=torch.bfloat16)
    names = quantized_modules(model)
    fed_bf16: set[str] = set()

    def record(name: str) -> Callable[..., None]:
        return lambda _module, args: fed_bf16.add(name) if args[0].dtype == torch.bfloat16 else None

    for name in names:
        model.get_submodule(name).register_forward_pre_hook(record(name))
    runner = session.runner("awq")
    inputs = session.model_inputs("awq", SAMPLE)
    tokens = session.generation("original", SAMPLE).tokens
    fast = teacher_forced_logits(model, inputs, tokens)
    assert fed_bf16 == set(names) and len(names) == len(language_linears(session.runner("original").model))
    assert next(model.parameters()).dtype == torch.float32 and np.isfinite(fast).all()
    assert np.abs(fast - runner.twin_score(inputs, tokens)).max() <= 0.2


def test_awq_onnx_counts_both_artefacts_it_built(parity_session: ParitySession) -> None:
    combined, awq, onnx = (parity_session.runner(name).artefact_bytes() for name in ("awq+onnx", "awq", "onnx"))
    assert combined == awq + onnx
