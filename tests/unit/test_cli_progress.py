"""Progress bars: on stderr, off under --quiet, off when stderr is not a terminal unless forced with --progress."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlparity import progress


@pytest.fixture(autouse=True)
def _restore_defaults() -> Iterator[None]:
    yield
    progress.configure()


def test_bars_are_off_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture) -> None:
    progress.configure()
    assert list(progress.bar([1, 2, 3], "judging")) == [1, 2, 3]
    with progress.stage("exporting"):
        pass
    assert capsys.readouterr().err == ""


def test_forced_bars_count_on_stderr_and_leave_stdout_alone(capsys: pytest.CaptureFixture) -> None:
    progress.configure(force=True)
    assert list(progress.bar(["a", "b"], "judging split")) == ["a", "b"]
    captured = capsys.readouterr()
    assert "judging split" in captured.err and "2/2" in captured.err
    assert captured.out == ""


def test_forced_stage_shows_its_description_around_the_work(capsys: pytest.CaptureFixture) -> None:
    progress.configure(force=True)
    done = []
    with progress.stage("exporting the vision encoder to ONNX"):
        done.append(True)
    assert done and "exporting the vision encoder to ONNX" in capsys.readouterr().err


def test_quiet_wins_over_force(capsys: pytest.CaptureFixture) -> None:
    progress.configure(quiet=True, force=True)
    assert not progress.enabled()
    list(progress.bar(range(3), "judging"))
    assert capsys.readouterr().err == ""
