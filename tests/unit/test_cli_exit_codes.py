"""Exit 1 means "a parity check failed" and nothing else: a crash after the run, or anywhere, exits otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlparity.cli import EXIT_INTERNAL_ERROR, EXIT_USAGE, main
from vlparity.inputs import fixture_images
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession

ROOT = Path(__file__).resolve().parents[2]
FAST = [
    "run", "--image", str(fixture_images()[0]), "--max-new-tokens", "2", "--device", "cpu", "--paths", "original,split",
    "--output-dir", str(ROOT / DEFAULT_CACHE_DIR),
]  # fmt: skip


def test_a_report_file_unwritable_only_when_written_exits_2_after_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "report.json"
    target.mkdir()  # its folder is writable (checked up front), the file itself cannot be written
    code = main([*FAST, "--report-json", str(target)])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "overall: PASS" in captured.out
    assert f"--report-json {target}: could not be written" in captured.err and "Traceback" not in captured.err


def test_an_unexpected_exception_exits_with_the_internal_error_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("planted bug")

    monkeypatch.setattr(ParitySession, "run", crash)
    code = main(FAST)
    assert code == EXIT_INTERNAL_ERROR == 2
    assert "internal error: RuntimeError: planted bug" in capsys.readouterr().err
