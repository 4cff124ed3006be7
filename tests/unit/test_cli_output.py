"""What the CLI writes where: results on stdout, vlparity's own log on stderr, third-party output never relabelled,
library chatter out of sight unless asked for, and ``--quiet`` leaving exactly the verdict line on stdout."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from vlparity import progress
from vlparity.cli import main
from vlparity.inputs import fixture_images
from vlparity.session import DEFAULT_CACHE_DIR

ROOT = Path(__file__).resolve().parents[2]
ONE_SAMPLE = ["--image", str(fixture_images()[0]), "--max-new-tokens", "2", "--device", "cpu"]
FAST = ["run", *ONE_SAMPLE, "--paths", "original,split", "--output-dir", str(ROOT / DEFAULT_CACHE_DIR)]


@pytest.mark.slow
def test_quiet_with_an_awq_path_prints_only_the_verdict_line_in_a_fresh_process() -> None:
    """A fresh process: gptqmodel prints its banner when first imported, AutoAWQ its deprecation notice, torch notes."""
    command = [sys.executable, "-m", "vlparity.cli", "run", *ONE_SAMPLE, "--paths", "original,awq", "--quiet"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["overall: PASS"]
    assert done.stderr == ""  # the banner, the deprecation notice and library warnings are all routed or silenced


def test_every_report_location_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    json_report, markdown = tmp_path / "r.json", tmp_path / "r.md"
    assert main([*FAST, "--report-json", str(json_report), "--report-md", str(markdown)]) == 0
    err = capsys.readouterr().err
    assert f"vlparity: report written: {json_report}" in err and f"vlparity: report written: {markdown}" in err


RELABEL_PROBE = """
import logging, sys
import vlparity.cli as cli

original = cli.samples_from_args


def samples_with_a_library_warning(*args):
    logging.getLogger("some.library").warning("hello from a library")
    return original(*args)


cli.samples_from_args = samples_with_a_library_warning
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_third_party_log_record_is_not_relabelled_as_vlparity() -> None:
    """A fresh process (pytest's own root handlers would hide a root-logger ``basicConfig``)."""
    done = subprocess.run(
        [sys.executable, "-c", RELABEL_PROBE, *FAST], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "hello from a library" in done.stderr.splitlines()
    assert "vlparity: preparing path split" in done.stderr.splitlines()  # vlparity's own log keeps its label


def test_third_party_prints_go_to_stderr_not_into_the_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import vlparity.cli

    def samples_with_a_banner(*args: object) -> object:
        print("INFO  a library's import banner")
        return original_samples(*args)

    original_samples = vlparity.cli.samples_from_args
    monkeypatch.setattr(vlparity.cli, "samples_from_args", samples_with_a_banner)
    assert main([*FAST, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["overall: PASS"]
    assert "a library's import banner" in captured.err


def test_a_stage_logs_library_output_at_debug(capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    progress.configure()
    with caplog.at_level(logging.DEBUG, logger="vlparity.progress"), progress.stage("exporting"):
        print("[torch.onnx] Obtain model graph ...")
        print("a warning on stderr", file=sys.stderr)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    assert [record.levelno for record in caplog.records] == [logging.DEBUG] * 3
    assert "exporting: 2 line(s) of library output:" in caplog.text and "Obtain model graph" in caplog.text


def test_a_failing_stage_shows_its_library_output_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    progress.configure()
    with (
        caplog.at_level(logging.DEBUG, logger="vlparity.progress"),
        pytest.raises(RuntimeError),
        progress.stage("quantizing"),
    ):
        print("the line that explains it")
        raise RuntimeError("boom")
    assert {record.levelno for record in caplog.records} == {logging.WARNING}
    assert "the line that explains it" in caplog.text
