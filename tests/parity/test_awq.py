"""The AWQ checkpoint: standard format, ≤ 0.30× fp16 bytes, the source's generation config, and the genuine checkpoint
passes with both of its errors reported. The per-linear weight check is proven here on both fixture families with
faults planted independently of faults.py (one layer's scales ×2, one down_proj's zero points +2). The other planted
faults (vision quantized by mistake, corrupted scales, a wrong group size, a kernel bug) are in test_fault_injection.py,
with every other path's."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.contracts import AwqArtefact
from vlparity.inputs import Sample
from vlparity.model_source import FIXTURES_DIR
from vlparity.parity.weights import LINEARS, judge_weights
from vlparity.paths.awq import AwqPath
from vlparity.paths.byo import ExternalAwqPath
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
    # lm_head stays unquantized: its own tensor, or the embedding matrix it is tied to (Qwen2.5-VL-3B, the fixture)
    head = "model.language_model.embed_tokens.weight" if model.config.tie_word_embeddings else "lm_head.weight"
    assert head in keys and any(k.startswith("model.visual.") and k.endswith(".weight") for k in keys)


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


def test_checkpoint_keeps_the_sources_generation_config(awq_dir: Path, session: ParitySession) -> None:
    """AutoAWQ's save_quantized sets do_sample = true; a deployment would then sample where the source is greedy."""
    source = session.context.source.directory / "generation_config.json"
    assert (awq_dir / "generation_config.json").read_bytes() == source.read_bytes()


# Per-linear weight check. Faults are planted here, independently of faults.py: every `scales` tensor of one layer ×2,
# and every zero point of one layer's down_proj +2 (packed int4 nibbles, clamped to 15).
FAMILIES = ("qwen2_5_vl", "qwen2_vl")


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, session: ParitySession) -> ParitySession:
    """An ``original``+``awq`` session on each fixture family (the module's own where it is that family)."""
    if session.context.source.directory.resolve() == (FIXTURES_DIR / request.param).resolve():
        return session
    return ParitySession(dataclasses.replace(session.settings, model=str(FIXTURES_DIR / request.param)))


def shift_zero_points(qzeros: torch.Tensor, shift: int) -> torch.Tensor:
    """Every 4-bit zero point packed in ``qzeros`` (8 per int32) moved by ``shift``, clamped to [0, 15]."""
    packed = qzeros.to(torch.int64) & 0xFFFFFFFF
    nibbles = [((packed >> (4 * k)) & 15) for k in range(8)]
    repacked = sum(((nibble + shift).clamp(0, 15) << (4 * k)) for k, nibble in enumerate(nibbles))
    return ((repacked + 2**31) % 2**32 - 2**31).to(torch.int32)


def planted_copy(awq_dir: Path, target: Path, edits: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> Path:
    """A copy of the checkpoint (no manifest: it is no longer vlparity's) with each tensor ending in a key of
    ``edits`` replaced by that edit of it."""
    shutil.copytree(awq_dir, target, ignore=shutil.ignore_patterns("manifest.json"))
    tensors = load_file(target / "model.safetensors")
    edited = {key: edit(tensors[key]) for suffix, edit in edits.items() for key in tensors if key.endswith(suffix)}
    assert edited, f"no tensor ends with {list(edits)}"
    save_file({**tensors, **edited}, target / "model.safetensors", metadata={"format": "pt"})
    return target


def scales_doubled(layer: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    return {f"layers.{layer}.{name}.scales": lambda tensor: tensor * 2 for name in LINEARS}


def zero_points_shifted(layer: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    return {f"layers.{layer}.mlp.down_proj.qzeros": lambda tensor: shift_zero_points(tensor, 2)}


def weight_reasons(family: ParitySession, checkpoint: Path) -> tuple[str, ...]:
    runner = AwqPath(family.context)
    runner.awq_dir = checkpoint
    errors = runner.weight_errors(family.runner("original").model)
    return judge_weights(errors, family.tolerance("awq").weight_max_rel_l2)


def test_clean_awq_weights_stay_under_the_limit(family: ParitySession) -> None:
    errors = family.weight_errors("awq")
    assert len(errors) == 7 * family.context.source_config().get_text_config().num_hidden_layers
    worst = max(error.rel_l2 for error in errors)
    assert 0.05 < worst <= family.tolerance("awq").weight_max_rel_l2, worst  # int4 changes every weight a little


def test_one_layers_scales_doubled_fail_naming_that_layer(family: ParitySession, tmp_path: Path) -> None:
    checkpoint = planted_copy(family.runner("awq").awq_dir, tmp_path / "awq", scales_doubled(1))
    (reason,) = weight_reasons(family, checkpoint)
    # all seven linears of layer 1 (four named, the worst first, "and 3 more"), no other layer's
    assert reason.count("layer 1 ") == 4 and "and 3 more" in reason, reason
    assert "layer 0" not in reason and "layer 2" not in reason and "layer 3" not in reason, reason


def test_zero_points_shifted_in_one_down_proj_fail_naming_it(family: ParitySession, tmp_path: Path) -> None:
    checkpoint = planted_copy(family.runner("awq").awq_dir, tmp_path / "awq", zero_points_shifted(0))
    (reason,) = weight_reasons(family, checkpoint)
    assert reason.startswith("weight error:") and "vs original in layer 0 mlp.down_proj" in reason, reason
    assert "layer 1" not in reason, reason


def test_a_corrupted_layer_fails_the_token_check_with_its_name(session: ParitySession, tmp_path: Path) -> None:
    """Through the session's token check: every zero point of one down_proj +2 (it passes the KL and top-k rules)."""
    checkpoint = planted_copy(session.runner("awq").awq_dir, tmp_path / "awq", zero_points_shifted(0))
    faulty = ParitySession(dataclasses.replace(session.settings, max_new_tokens=4))
    runner = ExternalAwqPath(faulty.context)
    runner.awq_artefact = AwqArtefact(checkpoint, session.runner("awq").awq_settings.group_size, 4)
    faulty.use_runner(runner)
    result = faulty.check_tokens("awq", SAMPLE)
    assert not result.passed
    assert any("weight error" in reason and "layer 0 mlp.down_proj" in reason for reason in result.reasons)
    assert result.metrics["weight_max_rel_l2"] > faulty.tolerance("awq").weight_max_rel_l2
