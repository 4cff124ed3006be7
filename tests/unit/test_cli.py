"""``vlparity run`` exit codes: 0 when every path passes, 1 when parity fails, 2 on bad usage or input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.parity.test_planted_fault import perturb_merger_weight
from vlparity.cli import EXIT_PARITY_FAILURE, EXIT_PASS, EXIT_USAGE, main
from vlparity.inputs import fixture_images
from vlparity.model_source import DEFAULT_MODEL, resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.split import split_cache_dir

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
        (["run", "--model", "/no/such/model"], "no such directory"),
        (["run", "--paths", "original,nope"], "unknown path(s) nope"),
        (["run", "--image", "/no/such.png"], "no such file"),
        (["run", "--max-new-tokens", "0"], "must be at least 1"),
        (["run", "--dtype", "float64"], "invalid choice"),
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vlparity.cli", "run", "--device", "cuda"], capture_output=True, text=True, check=False
    )
    assert result.returncode == EXIT_USAGE
    assert "no CUDA device is available" in result.stderr and "Traceback" not in result.stderr


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


def test_quantize_awq_rejects_a_group_size_that_does_not_divide(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("awq")
    assert main(["quantize-awq", "--group-size", "96", "--output-dir", str(tmp_path)]) == EXIT_USAGE
    assert "does not divide the in-features" in capsys.readouterr().err
    assert not list((tmp_path / "awq").glob("*")), "nothing half-written is left behind"


def test_quantize_awq_prints_the_checkpoint(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("awq")
    cache = request.config.rootpath / ".vlparity-cache"  # shared with the parity suite: the quantization is reused
    assert main(["quantize-awq", "--output-dir", str(cache)]) == EXIT_PASS
    directory = Path(capsys.readouterr().out.strip())
    config = json.loads((directory / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq"
