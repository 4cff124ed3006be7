"""Bring your own artefact through the CLI: an external artefact is judged against the original model when it fits the
contract (exit 0, or 1 when it is genuinely wrong) and refused before any model work when it does not (exit 2)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

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


def _edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def plant(folder: Path) -> None:
        document = json.loads((folder / name).read_text())
        edit(document)
        (folder / name).write_text(json.dumps(document))

    return plant


def _vision_weight_nudged(folder: Path) -> None:
    tensors = load_file(folder / "model.safetensors")
    tensors["model.visual.blocks.0.attn.proj.weight"][0, 0] += 1e-3
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _chat_template_changed(folder: Path) -> None:
    template = folder / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|im_start|>assistant", "<|im_start|>helper"))


# --awq-model is judged on its LM weights only; the awq path runs --model's vision tower, processor, tokenizer, chat
# template and generation config. A folder whose copy of any of them differs is refused, naming the file.
FOREIGN_PARTS = {
    "vision-weights": (_vision_weight_nudged, "1 of its 54 vision tensors differ from --model's (model.safetensors: "),
    "processor": (
        _edit_json("processor_config.json", lambda d: d["image_processor"].update(image_mean=[0.5, 0.5, 0.5])),
        "its processor (processor_config.json) differs from --model's",
    ),
    "tokenizer": (
        _edit_json("tokenizer_config.json", lambda d: d.update(eos_token="<|endoftext|>")),
        "its tokenizer (tokenizer.json, tokenizer_config.json) differs from --model's",
    ),
    "chat-template": (_chat_template_changed, "its chat template (chat_template.jinja, tokenizer_config.json) differs"),
    "generation-config": (
        _edit_json("generation_config.json", lambda d: d.update(do_sample=True, repetition_penalty=1.05)),
        "its generation config (generation_config.json) differs from --model's: do_sample True (--model: unset), "
        "repetition_penalty 1.05 (--model: unset)",
    ),
}


@pytest.fixture
def hub_awq(cache: Path, tmp_path: Path) -> Path:
    pytest.importorskip("awq")
    from vlparity.paths.awq import build_awq
    from vlparity.quantize.awq import AwqSettings

    return external_copy(build_awq(context_for("qwen2_5_vl", cache), AwqSettings()), tmp_path / "hub-awq")


@pytest.mark.parametrize("part", FOREIGN_PARTS)
def test_an_awq_folder_whose_non_lm_part_differs_from_the_models_exits_2_naming_the_file(
    part: str, hub_awq: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    plant, named = FOREIGN_PARTS[part]
    plant(hub_awq)
    code, out, err = run_cli(["run-awq", "--awq-model", str(hub_awq), *ONE_SAMPLE, "--output-dir", str(cache)], capsys)
    assert code == EXIT_USAGE and out == "" and "Traceback" not in err
    assert f"--awq-model {hub_awq}: {named}" in err, err
    assert "Copy the file(s) named from --model into the folder" in err
