"""Every subcommand works on both fixture families (one image, 4 tokens; artefacts shared with the parity suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlparity.cli import COMMANDS, EXIT_PASS, main
from vlparity.inputs import fixture_images
from vlparity.model_source import FIXTURES_DIR

FAMILIES = ("qwen2_5_vl", "qwen2_vl")
ONE_SAMPLE = ["--image", str(fixture_images()[0]), "--max-new-tokens", "4", "--device", "cpu"]
NEEDS_AWQ = {"quantize-awq", "run-awq"}
JUDGING = {"split", "run-onnx", "run-awq", "run"}
# command → (extra arguments, a line the output must contain); judging commands also print "overall: PASS".
CASES = {
    "original": (ONE_SAMPLE, "landscape_320x240|what-is-in-the-image: '"),
    "split": (ONE_SAMPLE, "split: "),
    "export-onnx": (["--device", "cpu"], "fp32: "),
    "run-onnx": (ONE_SAMPLE, "onnx  "),
    "quantize-awq": (["--device", "cpu"], "/awq/g128-"),
    "run-awq": (ONE_SAMPLE, "awq   "),
    "bundle": (["--device", "cpu"], "/bundle\n"),
    "run": ([*ONE_SAMPLE, "--paths", "original,split"], "split "),
}


def test_the_cases_cover_every_subcommand() -> None:
    assert set(CASES) == set(COMMANDS)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("command", list(CASES))
def test_subcommand_on_fixture_family(
    command: str, family: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if command in NEEDS_AWQ:
        pytest.importorskip("awq")
    cache = request.config.rootpath / ".vlparity-cache"  # shared with the parity suite: artefacts are reused
    extra, expected = CASES[command]
    where = ["--output-dir", str(tmp_path / "bundle"), "--cache-dir", str(cache)] if command == "bundle" else []
    argv = [command, "--model", str(FIXTURES_DIR / family), *extra, *(where or ["--output-dir", str(cache)])]
    assert main(argv) == EXIT_PASS
    out = capsys.readouterr().out
    assert expected in out
    if command in JUDGING:
        assert "overall: PASS" in out
    if command == "bundle":
        assert out == f"{tmp_path / 'bundle'}\n" and (tmp_path / "bundle" / "manifest.json").is_file()


def test_bundle_quantize_ships_the_awq_language_model(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("awq")
    cache = request.config.rootpath / ".vlparity-cache"
    argv = ["bundle", "--quantize", "--device", "cpu", "--output-dir", str(tmp_path / "b"), "--cache-dir", str(cache)]
    assert main(argv) == EXIT_PASS
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["quantized"] is True
    assert json.loads((tmp_path / "b" / "language" / "config.json").read_text())["quantization_config"]
