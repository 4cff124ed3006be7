"""``vlparity`` exit codes (0 when every path passes, 1 when parity fails, 2 on bad usage or input), help, options."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.parity.faults import perturb_merger_weight
from vlparity.cli import COMMANDS, EXIT_PARITY_FAILURE, EXIT_PASS, EXIT_USAGE, build_parser, main, path_names_from_args
from vlparity.errors import UsageError
from vlparity.export.qdq import quark_available
from vlparity.inputs import fixture_images
from vlparity.model_source import DEFAULT_MODEL, resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.split import split_cache_dir
from vlparity.session import DEFAULT_CACHE_DIR

IMAGE = str(fixture_images()[0])
FAST = ["--image", IMAGE, "--max-new-tokens", "4", "--device", "cpu", "--paths", "original,split"]


def test_passing_run_exits_0_and_writes_the_json_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report_path = tmp_path / "report.json"
    code = main(["run", *FAST, "--output-dir", str(tmp_path / "cache"), "--report-json", str(report_path)])
    assert code == EXIT_PASS
    assert "overall: PASS" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    split = report["paths"]["split"]
    assert report["model"] and report["device"] == "cpu"
    assert split["passed"] is True
    assert split["vision"]["max_abs_err"] == 0.0 and split["vision"]["min_cosine"] >= 0.999999
    assert split["tokens"]["exact"] is True and split["tokens"]["first_divergence"] is None
    assert {"load", "preprocess", "vision_encode", "generate"} <= set(split["timings"])
    assert all(stage["total"] >= 0 for stage in split["timings"].values())


def test_parity_failure_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache = tmp_path / "cache"
    assert main(["run", *FAST, "--output-dir", str(cache)]) == EXIT_PASS  # builds the genuine split
    context = PathContext(resolve_model(DEFAULT_MODEL), torch.device("cpu"), torch.float32, cache)
    split_dir = split_cache_dir(context)
    assert split_dir.is_dir()
    perturb_merger_weight(split_dir, 1e-3)  # the cached artefact now carries a planted fault
    capsys.readouterr()
    assert main(["run", *FAST, "--output-dir", str(cache)]) == EXIT_PARITY_FAILURE
    out = capsys.readouterr().out
    assert "FAIL split vision" in out and "overall: FAIL" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--paths", "original,nope"], "unknown path(s) nope"),
        (["run", "--image", "/no/such.png"], "no such file"),
        (["run", "--max-new-tokens", "0"], "must be at least 1"),
        (["run", "--dtype", "float64"], "invalid choice"),
        (["run", "--image", "/no/such/dir/*.png"], "--image '/no/such/dir/*.png': the pattern matches no file"),
        (["run", "--report-md", "out/report.html"], "--report-md out/report.html: the file name must end in .md"),
        (["original", "--quantize"], "original runs only the reference model"),
        (["run", "--paths", "original,split", "--onnx-vision", "x.onnx"], "--onnx-vision is given but none"),
        (["run-onnx", "--onnx-vision", "/no/such.onnx"], "--onnx-vision /no/such.onnx: no such file"),
        (["export-onnx", "--image", IMAGE], "unrecognized arguments: --image"),
        (["bundle"], "bundle: pass --output-dir DIR"),
        (["export-onnx", "--precision", "qdq", "--qdq-config", "int4"], "--qdq-config: invalid choice: 'int4'"),
        (["run", "--paths", "original,onnx-qdq", "--qdq-config", "A8W8"], "--qdq-config: invalid choice"),
        pytest.param(
            ["run", "--paths", "original,onnx-qdq", "--qdq-config", "a16w8", "--static-shape", "224x224"],
            "--qdq-config a16w8 with --static-shape: onnxruntime's quantize_static (the fallback",
            marks=pytest.mark.skipif(quark_available(), reason="AMD Quark writes a16w8 at opset 17"),
        ),
    ],
)
def test_bad_usage_exits_2_with_a_message_and_no_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert message in err and "Traceback" not in err


def test_console_script_is_installed() -> None:
    executable = shutil.which("vlparity") or str(Path(sys.executable).with_name("vlparity"))
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "vlparity run" in result.stdout


def test_export_onnx_writes_validated_models_and_prints_them(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture
) -> None:
    from vlparity.export.onnx_vision import validate

    cache = request.config.rootpath / ".vlparity-cache"  # shared with the parity suite: the export is reused
    assert main(["export-onnx", "--output-dir", str(cache), "--precision", "fp32", "--precision", "int8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    printed = dict(line.split(": ", 1) for line in lines)
    assert set(printed) == {"fp32", "int8"}
    for path in printed.values():
        validate(Path(path))


def test_quantize_awq_prints_the_checkpoint(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("awq")
    cache = request.config.rootpath / ".vlparity-cache"  # shared with the parity suite: the quantization is reused
    assert main(["quantize-awq", "--output-dir", str(cache)]) == EXIT_PASS
    directory = Path(capsys.readouterr().out.strip())
    config = json.loads((directory / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_of_vlparity_and_of_every_subcommand_shows_examples(
    command: str | None, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "examples:" in out and f"vlparity {command or ''}" in out


def test_top_level_help_lists_every_subcommand_with_an_example(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    examples = capsys.readouterr().out.split("examples:")[1]
    assert all(f"vlparity {name} " in examples for name in COMMANDS)


def test_model_id_and_max_tokens_are_aliases() -> None:
    args = build_parser().parse_args(["run", "--model-id", "Qwen/Qwen2.5-VL-3B-Instruct", "--max-tokens", "3"])
    assert (args.model, args.max_new_tokens) == ("Qwen/Qwen2.5-VL-3B-Instruct", 3)


EVERY_PATH = ["original", "split", "onnx", "onnx-fp16", "onnx-int8", "onnx-bf16", "onnx-qdq", "awq", "awq+onnx"]


@pytest.mark.parametrize(
    ("argv", "paths"),
    [
        (["run"], EVERY_PATH),
        (["run", "--paths", "all"], EVERY_PATH),
        (["run", "--quantize"], ["original", "awq", "awq+onnx"]),
        (["run", "--paths", "split,onnx-int8", "--quantize"], ["original", "awq", "onnx-int8"]),
        (["original"], ["original"]),
        (["split"], ["original", "split"]),
        (["split", "--quantize"], ["original", "awq"]),
        (["run-onnx"], ["original", "onnx"]),
        (["run-onnx", "--quantize"], ["original", "awq+onnx"]),
        (["run-awq"], ["original", "awq"]),
        (["run-awq", "--awq-model", "d", "--onnx-vision", "f.onnx"], ["original", "awq", "awq+onnx"]),
        (["run-onnx", "--awq-model", "d", "--onnx-vision", "f.onnx"], ["original", "onnx", "awq+onnx"]),
    ],
)
def test_each_subcommand_judges_its_paths(argv: list[str], paths: list[str]) -> None:
    assert path_names_from_args(build_parser().parse_args(argv)) == paths


def test_only_bundle_lacks_a_default_output_dir() -> None:
    parser = build_parser()
    assert parser.parse_args(["bundle"]).output_dir is None  # the bundle's own new directory must be named
    assert all(parser.parse_args([name]).output_dir == DEFAULT_CACHE_DIR for name in COMMANDS if name != "bundle")


def test_debug_shows_the_traceback_of_an_expected_error() -> None:
    with pytest.raises(UsageError, match="unknown path"):
        main(["run", "--paths", "original,nope", "--debug"])
