"""The pytest plugin's report outputs: ``--vlparity-report`` by suffix, and the Markdown job summary for GitHub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.report_samples import build_report
from vlparity.pytest_plugin import OPTIONS, SESSION_KEY, pytest_terminal_summary

pytest_plugins = ["pytester"]


class _Session:
    def report(self) -> Any:
        return build_report()


class _Config:
    """The two things pytest_terminal_summary reads from a config: the stash and the options."""

    def __init__(self, **options: str | None) -> None:
        self.stash = {SESSION_KEY: _Session()}
        self._options = {OPTIONS[name].ini: value for name, value in options.items()}

    def getoption(self, name: str) -> str | None:
        return self._options.get(name)

    def getini(self, name: str) -> str | None:
        return None


class _Terminal:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def section(self, title: str) -> None:
        self.lines.append((f"== {title}", {}))

    def write_line(self, line: str, **markup: Any) -> None:
        self.lines.append((line, markup))


def _summarise(**options: str | None) -> _Terminal:
    terminal = _Terminal()
    pytest_terminal_summary(terminal, _Config(**options))  # type: ignore[arg-type]
    return terminal


def test_the_report_suffix_picks_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _summarise(**{"report": str(tmp_path / "parity.md")})
    assert (tmp_path / "parity.md").read_text().startswith("## vlparity parity report")


def test_an_unknown_suffix_is_reported_in_red_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    terminal = _summarise(**{"report": str(tmp_path / "parity.xml")})
    line, markup = terminal.lines[-1]
    assert "parity.xml" in line and ".json, .md, .html" in line and markup == {"red": True}
    assert list(tmp_path.iterdir()) == []


def test_the_markdown_summary_is_appended_to_github_step_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _summarise()
    text = summary.read_text()
    assert text.startswith("earlier step\n## vlparity parity report: ❌ FAIL")


def test_without_github_step_summary_no_summary_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    _summarise()
    assert list(tmp_path.iterdir()) == []


PARITY_TEST = """
from vlparity.inputs import Sample, fixture_images

def test_split(parity_session, candidate_path):
    sample = Sample((fixture_images()[0],), "What is in the image?")
    assert all(r.passed for r in parity_session.check_vision(candidate_path, sample))
    assert parity_session.check_tokens(candidate_path, sample).passed
"""


@pytest.mark.slow
def test_a_real_run_writes_html_and_the_job_summary(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(PARITY_TEST)
    report, summary = pytester.path / "out" / "parity.html", pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    cache = tmp_path_factory.mktemp("cache")
    result = pytester.runpytest_subprocess(
        *("--vlparity-device", "cpu", "--vlparity-paths", "original,split", "--vlparity-max-new-tokens", "4"),
        f"--vlparity-cache-dir={cache}",
        f"--vlparity-report={report}",
    )
    result.assert_outcomes(passed=1)
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('data-kind="heatmap"') == 1
    assert summary.read_text().startswith("## vlparity parity report: ✅ PASS")
