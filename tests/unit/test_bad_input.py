"""Bad input: a clear error, nothing lost. Every case runs through ``vlparity.cli.main`` and ends in one typed error
from ``vlparity.errors`` (raised as such under ``--debug``), a message naming the file or argument and the remedy, exit
code 2 and no traceback. The one exception is an interrupted export: exit 130, as for any interrupted command, and
nothing partial left behind.

Broken models are copies of the Qwen2.5-VL fixture in tmp_path, broken ONNX files are small synthetic graphs. "Not
writable" is a path under a regular file: these tests may run as root, which ignores permission bits.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.unit.test_contracts import vision_graph
from vlparity.cli import EXIT_INTERRUPTED, EXIT_PASS, EXIT_USAGE, main
from vlparity.errors import (
    ArtefactContractError,
    ArtefactError,
    DeviceUnavailableError,
    EvalSetError,
    InputFileError,
    ModelNotFoundError,
    ModelWeightsError,
    OutputNotWritableError,
    PromptError,
    UnsupportedModelError,
    UsageError,
)
from vlparity.inputs import fixture_images
from vlparity.manifest import verify_manifest
from vlparity.model_source import DEFAULT_MODEL, resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.split import SplitPath

IMAGE = str(fixture_images()[0])
ONE_TOKEN = ["--image", IMAGE, "--max-new-tokens", "1", "--device", "cpu"]
SHARED_CACHE = Path(__file__).resolve().parents[2] / ".vlparity-cache"  # the parity suite's: its split is reused
TEXT_ONLY_TEMPLATE = "{% for m in messages %}{% for c in m['content'] %}{{ c.get('text', '') }}{% endfor %}{% endfor %}"

Setup = Callable[[Path, pytest.MonkeyPatch], tuple[list[str], str]]  # → argv, what the message must name


@dataclass(frozen=True)
class Case:
    setup: Setup
    error: type[BaseException]
    remedy: str
    exit_code: int = EXIT_USAGE


def model_copy(tmp_path: Path, edit: Callable[[Path], None]) -> Path:
    directory = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, directory)
    edit(directory)
    return directory


def judge(command: str, model: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [command, "--model", str(model), *ONE_TOKEN, "--output-dir", str(tmp_path / "cache"), *extra]


def broken_model(edit: Callable[[Path], None], named: Callable[[Path], str] = str) -> Setup:
    def setup(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
        model = model_copy(tmp_path, edit)
        return judge("original", model, tmp_path), named(model)

    return setup


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def without_config(model: Path) -> None:
    (model / "config.json").unlink()


def with_model_type(model: Path, model_type: str = "llava") -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": model_type}))


def with_a_row_missing(model: Path, key: str = "model.layers.0.mlp.up_proj.weight") -> None:
    tensors = load_file(model / "model.safetensors")
    tensors[key] = tensors[key][:-1].clone()
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})


def with_text_only_template(model: Path) -> None:
    (model / "chat_template.jinja").write_text(TEXT_ONLY_TEMPLATE)


def missing_model(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
    return judge("original", tmp_path / "absent", tmp_path), str(tmp_path / "absent")


def onnx_vision(break_it: Callable[[Path], None], external_data: bool = False) -> Setup:
    def setup(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
        path = vision_graph(tmp_path / "vision.onnx", external_data=external_data)
        break_it(path)
        return judge("run-onnx", DEFAULT_MODEL, tmp_path, "--onnx-vision", str(path)), str(path)

    return setup


def without_external_data(path: Path) -> None:
    path.with_name("vision.onnx.data").unlink()


def split_with_a_changed_byte(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """A copy of vlparity's own split (manifest included) with one byte of the LM weights flipped."""
    context = PathContext(resolve_model(DEFAULT_MODEL), torch.device("cpu"), torch.float32, SHARED_CACHE)
    runner = SplitPath(context)
    runner.prepare()
    copy = shutil.copytree(runner.artefact_dir, tmp_path / "split")
    weights = copy / "language" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return judge("split", DEFAULT_MODEL, tmp_path, "--split-dir", str(copy)), str(copy)


def image(write: Callable[[Path], None]) -> Setup:
    def setup(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
        path = tmp_path / "photo.png"
        write(path)
        argv = ["original", "--image", str(path), "--device", "cpu", "--output-dir", str(tmp_path / "cache")]
        return argv, str(path)

    return setup


def usage(*argv: str, named: str) -> Setup:
    def setup(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
        return [*argv, "--output-dir", str(tmp_path / "cache")], named

    return setup


def under_a_file(tmp_path: Path, _: pytest.MonkeyPatch) -> tuple[list[str], str]:
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    output = tmp_path / "notes.txt" / "cache"
    return ["split", *ONE_TOKEN, "--output-dir", str(output)], str(output)


def interrupted_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """The exporter is stopped (Ctrl-C) after it wrote half a model."""

    def half_then_interrupt(*args: object, **kwargs: object) -> None:
        out_path = Path(args[3])
        out_path.write_bytes(b"half an onnx model")
        raise KeyboardInterrupt

    monkeypatch.setattr("vlparity.paths.onnx.export_fp32", half_then_interrupt)
    cache = tmp_path / "cache"
    return ["export-onnx", "--device", "cpu", "--output-dir", str(cache)], str(cache / "onnx")


def eval_set_line(line: str) -> Setup:
    """A JSONL eval set whose second line is ``line`` (the first is good)."""

    def setup(tmp_path: Path, _monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
        good = json.dumps({"image": IMAGE, "question": "what shape is it?", "answer": "square"})
        path = tmp_path / "qa.jsonl"
        path.write_text(f"{good}\n{line}\n")
        return ["run", *ONE_TOKEN, "--paths", "original,split", "--eval-set", str(path)], f"--eval-set {path}:2"

    return setup


def easy_vqa_missing(_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    monkeypatch.setitem(sys.modules, "easy_vqa", None)  # import easy_vqa raises ImportError
    return ["run", *ONE_TOKEN, "--eval-set", "easy-vqa[:10]"], "--eval-set easy-vqa[:10]"


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

CASES = {
    "missing model dir": Case(missing_model, ModelNotFoundError, "Pass a local checkpoint directory"),
    "dir without config": Case(broken_model(without_config), ModelNotFoundError, "directory that holds config.json"),
    "unsupported architecture": Case(
        broken_model(with_model_type, lambda _: "model_type='llava'"),
        UnsupportedModelError,
        "Supported: qwen2_5_vl, qwen2_vl, qwen3_vl. Pass a checkpoint of one of these families",
    ),
    "truncated safetensors": Case(
        broken_model(lambda m: truncate(m / "model.safetensors"), lambda m: f"{m}: model.safetensors"),
        ModelWeightsError,
        "download it again",
    ),
    "safetensors with wrong shapes": Case(
        broken_model(with_a_row_missing, lambda m: f"{m}: the *.safetensors weights do not fit config.json"),
        ModelWeightsError,
        "download the checkpoint again",
    ),
    "truncated ONNX": Case(onnx_vision(truncate), ArtefactContractError, "copy it again completely"),
    "ONNX whose external data is missing": Case(
        onnx_vision(without_external_data, external_data=True), ArtefactContractError, "Copy the external data file"
    ),
    "manifest hash mismatch": Case(split_with_a_changed_byte, ArtefactError, "delete it and let vlparity rebuild it"),
    "unreadable image": Case(image(lambda p: p.write_text("not an image")), InputFileError, "Use a PNG, JPEG"),
    "zero-byte image": Case(image(lambda p: p.write_bytes(b"")), InputFileError, "Re-export or re-download"),
    "1x1 image": Case(image(lambda p: Image.new("RGB", (1, 1)).save(p)), InputFileError, "at least 2 px"),
    "image without a placeholder": Case(
        broken_model(with_text_only_template), PromptError, "restore the model's original chat template"
    ),
    "placeholder without an image": Case(
        usage("original", *ONE_TOKEN, "--prompt", "<|image_pad|> What is it?", named="--prompt '<|image_pad|>"),
        PromptError,
        "remove them from the prompt text",
    ),
    "unknown EP": Case(
        usage("run-onnx", *ONE_TOKEN, "--ep", "nosuch", named="--ep: invalid choice: 'nosuch'"),
        UsageError,
        "choose from 'cpu', 'cuda', 'vitisai', 'auto'",
    ),
    "CUDA where there is none": Case(
        usage("original", "--device", "cuda", named="--device cuda"), DeviceUnavailableError, "Use --device cpu"
    ),
    "AWQ group size not dividing the dimensions": Case(
        usage("quantize-awq", "--device", "cpu", "--group-size", "96", named="--group-size 96"),
        UsageError,
        "Choose a group size that divides them",
    ),
    "eval set line that is not JSON": Case(eval_set_line('{"image": '), EvalSetError, "Each line must be one object"),
    "eval set line without an answer": Case(
        eval_set_line(json.dumps({"image": IMAGE, "question": "q?"})), EvalSetError, "every line needs image"
    ),
    "eval set image that does not exist": Case(
        eval_set_line(json.dumps({"image": "gone.png", "question": "q?", "answer": "a"})),
        EvalSetError,
        "Image paths are relative to the eval set's folder",
    ),
    "easy-vqa without the data set": Case(easy_vqa_missing, UsageError, "pip install 'vlparity[eval]'"),
    "output dir not writable": Case(under_a_file, OutputNotWritableError, "Choose a directory path"),
    "interrupted export": Case(interrupted_export, KeyboardInterrupt, "Run the command again", EXIT_INTERRUPTED),
}
PARAMS = [
    pytest.param(case, id=name, marks=[no_cuda] if case.error is DeviceUnavailableError else [])
    for name, case in CASES.items()
]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_exits_2_naming_the_culprit_and_the_remedy_without_a_traceback(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    argv, named = case.setup(tmp_path, monkeypatch)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case.exit_code
    message = err.splitlines()[-1]
    assert message.startswith(("vlparity: error: ", "vlparity: interrupted: "))
    assert named in message and case.remedy in message
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_raises_its_typed_error_under_debug(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, _ = case.setup(tmp_path, monkeypatch)
    with pytest.raises(case.error) as raised:
        main([*argv, "--debug"])
    assert type(raised.value) is case.error


def test_an_interrupted_export_leaves_nothing_behind_and_the_next_run_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    argv, onnx_dir = interrupted_export(tmp_path, monkeypatch)
    assert main(argv) == EXIT_INTERRUPTED
    assert [entry.name for entry in Path(onnx_dir).iterdir() if not entry.name.endswith(".lock")] == []

    def tiny_valid_export(*args: object, **kwargs: object) -> None:  # stands in for the minutes-long real export
        identity = onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        )  # fmt: skip
        onnx.save(onnx.helper.make_model(identity, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(args[3]))

    monkeypatch.setattr("vlparity.paths.onnx.export_fp32", tiny_valid_export)
    capsys.readouterr()
    assert main(argv) == EXIT_PASS
    built = Path(capsys.readouterr().out.split(": ", 1)[1].strip()).parent
    assert built.parent == Path(onnx_dir)
    assert set(verify_manifest(built, "onnx-vision")["files"]) == {"vision.onnx"}
