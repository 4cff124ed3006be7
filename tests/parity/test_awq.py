"""The AWQ checkpoint: standard format, ≤ 0.30× fp16 bytes, and three planted faults that must fail with the stage
named — vision quantized by mistake (the modules_to_not_convert trap), one layer's scales corrupted, and a wrong
group size on load."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.parity.samples import FIRST_PROMPT, IMAGES
from vlparity.errors import ArtefactError
from vlparity.hashing import tree_sha256
from vlparity.inputs import Sample
from vlparity.manifest import MANIFEST_NAME
from vlparity.paths.awq import AwqPath
from vlparity.quantize.awq import language_linears, load_awq
from vlparity.quantize.awq_compat import MODULES_TO_NOT_CONVERT
from vlparity.session import ParitySession

pytest.importorskip("awq", reason="AutoAWQ is not installed (pip install --no-deps autoawq==0.2.9)")
SAMPLE = Sample((IMAGES[2],), FIRST_PROMPT)
# A corruption each family's measured KL limit catches on SAMPLE (settled KL measured on SAMPLE): Qwen2.5-VL ×3 → 0.027
# (limit 0.01); Qwen2-VL's own quantization floor is 21× higher (limit 0.15): ×10 → 0.067 hides in it, ×30 → 0.21.
SCALES_FAULT = {"qwen2_5_vl": 3, "qwen2_vl": 30}


@pytest.fixture(scope="module")
def session(parity_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(parity_session.settings, paths=("original", "awq")))


@pytest.fixture(scope="module")
def awq_dir(session: ParitySession) -> Path:
    return session.runner("awq").awq_dir


def resign(directory: Path) -> None:
    """Recompute the manifest after a planted fault, so that only the parity checks can notice it."""
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["files"] = {k: v for k, v in tree_sha256(directory).items() if k != MANIFEST_NAME}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def faulty_copy(awq_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "awq"
    shutil.copytree(awq_dir, copy)
    return copy


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


def test_vision_quantized_by_mistake_is_refused_at_load(awq_dir: Path, tmp_path: Path) -> None:
    faulty = faulty_copy(awq_dir, tmp_path)
    config = json.loads((faulty / "config.json").read_text())
    config["quantization_config"]["modules_to_not_convert"] = ["visual"]  # what AutoAWQ writes
    (faulty / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtefactError, match=r"AWQ load: .* vision module\(s\) were loaded as AWQ layers"):
        load_awq(faulty, torch.device("cpu"))


def test_wrong_group_size_on_load_is_refused(awq_dir: Path, tmp_path: Path) -> None:
    faulty = faulty_copy(awq_dir, tmp_path)
    config = json.loads((faulty / "config.json").read_text())
    config["quantization_config"]["group_size"] //= 2
    (faulty / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtefactError, match="AWQ load: transformers could not load"):
        load_awq(faulty, torch.device("cpu"))


def test_corrupted_scales_of_one_layer_fail_the_quantization_check(
    awq_dir: Path, tmp_path: Path, session: ParitySession
) -> None:
    faulty = faulty_copy(awq_dir, tmp_path)
    tensors = load_file(faulty / "model.safetensors")
    key = "model.language_model.layers.0.mlp.down_proj.scales"
    tensors[key] = tensors[key] * SCALES_FAULT[session.context.source.model_type]
    save_file(tensors, faulty / "model.safetensors", metadata={"format": "pt"})
    resign(faulty)
    runner = AwqPath(session.context)
    runner.awq_dir = faulty
    checked = ParitySession(session.settings)
    checked.use_runner(runner)
    result = checked.check_tokens("awq", SAMPLE)
    assert not result.passed
    assert any(reason.startswith("quantization error:") for reason in result.reasons), result.reasons


def test_a_kernel_that_computes_wrong_numbers_fails_the_kernel_check(session: ParitySession) -> None:
    """A kernel bug (one AWQ linear's output 5 % off) hides in quantization noise, but not from the float twin."""
    checked = ParitySession(session.settings)
    runner = AwqPath(session.context)
    runner.prepare()
    linear = runner.language.model.language_model.layers[0].mlp.down_proj
    linear.register_forward_hook(lambda _module, _inputs, output: output * 1.05)  # the twin is built from the file
    checked.use_runner(runner)
    result = checked.check_tokens("awq", SAMPLE)
    assert not result.passed
    assert any(reason.startswith("kernel/format error") for reason in result.reasons), result.reasons
