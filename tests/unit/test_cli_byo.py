"""Bring your own artefact through the CLI: an external artefact is judged against the original model when it fits the
contract (exit 0, or 1 when it is genuinely wrong) and refused before any model work when it does not (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from tests.parity.faults import perturb_merger_weight
from vlparity.cli import EXIT_PARITY_FAILURE, EXIT_PASS, EXIT_USAGE, main
from vlparity.export.onnx_vision import ExportSettings
from vlparity.inputs import fixture_images
from vlparity.manifest import MANIFEST_NAME
from vlparity.model_source import FIXTURES_DIR, resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import build_onnx_vision
from vlparity.paths.split import SplitPath

FAMILIES = ("qwen2_5_vl", "qwen2_vl")
ONE_SAMPLE = ["--image", str(fixture_images()[0]), "--max-new-tokens", "4", "--device", "cpu"]


@pytest.fixture
def cache(request: pytest.FixtureRequest) -> Path:
    return request.config.rootpath / ".vlparity-cache"  # shared with the parity suite: artefacts are reused


def context_for(family: str, cache: Path) -> PathContext:
    return PathContext(resolve_model(FIXTURES_DIR / family), torch.device("cpu"), torch.float32, cache)


def external_copy(artefact: Path, target: Path) -> Path:
    """An artefact as it arrives from elsewhere: copied under another name, without vlparity's manifest."""
    if artefact.is_dir():
        shutil.copytree(artefact, target)
        (target / MANIFEST_NAME).unlink(missing_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(artefact, target)
    return target


def external_onnx(family: str, cache: Path, target: Path, rename: tuple[str, str] | None = None) -> Path:
    """vlparity's fp32 export of ``family`` copied elsewhere, optionally with one graph input renamed (onnx API)."""
    exported = build_onnx_vision(context_for(family, cache), ExportSettings("fp32")) / "vision.onnx"
    if rename is None:
        return external_copy(exported, target)
    old, new = rename
    model = onnx.load(str(exported))
    next(value for value in model.graph.input if value.name == old).name = new
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("family", FAMILIES)
def test_an_external_onnx_export_with_a_wrong_input_name_exits_2_naming_it(
    family: str, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    renamed = external_onnx(family, cache, tmp_path / "olive" / "model.onnx", rename=("position_ids", "pos_ids"))
    argv = ["run-onnx", "--model", str(FIXTURES_DIR / family), "--onnx-vision", str(renamed), *ONE_SAMPLE]
    code, out, err = run_cli([*argv, "--output-dir", str(cache)], capsys)
    assert code == EXIT_USAGE and out == ""
    assert f"--onnx-vision {renamed}: input pos_ids int64[?, 2] is not one vlparity can feed" in err
    assert "position_ids int64[?, 2]" in err and "Traceback" not in err


def test_the_same_external_export_with_the_right_names_is_judged(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    external = external_onnx("qwen2_vl", cache, tmp_path / "olive" / "model.onnx")
    report = tmp_path / "report.json"
    argv = ["run-onnx", "--model", str(FIXTURES_DIR / "qwen2_vl"), "--onnx-vision", str(external), *ONE_SAMPLE]
    code, out, _ = run_cli([*argv, "--output-dir", str(cache), "--report-json", str(report)], capsys)
    assert code == EXIT_PASS and "overall: PASS" in out
    onnx_path = json.loads(report.read_text())["paths"]["onnx"]
    assert onnx_path["passed"] is True
    assert onnx_path["details"]["external"] == {"onnx_vision": str(external)}


def test_a_genuine_external_awq_checkpoint_is_judged_alone_and_with_an_external_onnx(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("awq")
    from vlparity.paths.awq import build_awq
    from vlparity.quantize.awq import AwqSettings

    context = context_for("qwen2_5_vl", cache)
    awq_model = external_copy(build_awq(context, AwqSettings()), tmp_path / "hub-awq")
    onnx_vision = external_onnx("qwen2_5_vl", cache, tmp_path / "olive" / "vision.onnx")
    report = tmp_path / "report.json"
    argv = ["run-awq", "--awq-model", str(awq_model), "--onnx-vision", str(onnx_vision), *ONE_SAMPLE]
    code, out, _ = run_cli([*argv, "--output-dir", str(cache), "--report-json", str(report)], capsys)
    assert code == EXIT_PASS and "overall: PASS" in out
    paths = json.loads(report.read_text())["paths"]
    assert set(paths) == {"original", "awq", "awq+onnx"}
    assert paths["awq"]["passed"] is True and paths["awq"]["details"]["external"]["awq_model"] == str(awq_model)
    assert paths["awq+onnx"]["passed"] is True
    assert paths["awq+onnx"]["details"]["external"] == {"onnx_vision": str(onnx_vision), "awq_model": str(awq_model)}


def test_an_awq_checkpoint_of_another_quant_method_exits_2(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = tmp_path / "gptq"
    checkpoint.mkdir()
    config = json.loads((FIXTURES_DIR / "qwen2_5_vl" / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (checkpoint / "config.json").write_text(json.dumps(config))
    code, out, err = run_cli(
        ["run-awq", "--awq-model", str(checkpoint), *ONE_SAMPLE, "--output-dir", str(cache)], capsys
    )
    assert code == EXIT_USAGE and out == ""
    assert f"--awq-model {checkpoint}: quantization_config.quant_method is 'gptq', expected 'awq'" in err
    assert "Traceback" not in err


@pytest.fixture
def external_split(cache: Path, tmp_path: Path) -> Path:
    runner = SplitPath(context_for("qwen2_5_vl", cache))
    runner.prepare()  # builds (or reuses) vlparity's own split
    copy = tmp_path / "my-split"
    shutil.copytree(runner.artefact_dir, copy)
    return copy


def test_an_external_split_is_judged_under_split(
    external_split: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    (external_split / MANIFEST_NAME).unlink()
    code, out, _ = run_cli(
        ["split", "--split-dir", str(external_split), *ONE_SAMPLE, "--output-dir", str(cache)], capsys
    )
    assert code == EXIT_PASS and "overall: PASS" in out
    assert f"split: {external_split}" in out


def test_a_faulty_external_split_fails_parity(external_split: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    perturb_merger_weight(external_split, 1e-3)
    (external_split / MANIFEST_NAME).unlink()
    code, out, _ = run_cli(
        ["split", "--split-dir", str(external_split), *ONE_SAMPLE, "--output-dir", str(cache)], capsys
    )
    assert code == EXIT_PARITY_FAILURE and "FAIL split vision" in out
