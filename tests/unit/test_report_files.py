"""write_report: the suffix picks the rendering, anything else is a usage error, and the write is atomic."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.unit.report_samples import build_report
from vlparity.errors import UsageError
from vlparity.report import write_report
from vlparity.report.model import SCHEMA_VERSION


@pytest.mark.parametrize(
    ("name", "start"),
    [("r.json", "{"), ("r.md", "## vlparity parity report"), ("r.html", "<!DOCTYPE html>"), ("R.HTM", "<!DOCTYPE")],
)
def test_the_suffix_picks_the_rendering(tmp_path: Path, name: str, start: str) -> None:
    written = write_report(build_report(), tmp_path / name)
    assert written == tmp_path / name and written.read_text(encoding="utf-8").startswith(start)


def test_an_unknown_suffix_is_a_usage_error_naming_the_path_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"r\.txt.*\.json, \.md, \.html, \.htm"):
        write_report(build_report(), tmp_path / "r.txt")
    assert list(tmp_path.iterdir()) == []


def test_the_write_creates_parents_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "deep" / "r.json"
    write_report(build_report(), target)
    assert json.loads(target.read_text())["schema_version"] == SCHEMA_VERSION
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_the_report_is_readable_by_others(tmp_path: Path) -> None:
    mode = stat.S_IMODE(write_report(build_report(), tmp_path / "r.html").stat().st_mode)
    assert mode & stat.S_IROTH


def test_an_existing_report_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "r.md"
    target.write_text("old content " * 10_000)
    write_report(build_report(), target)
    assert "old content" not in target.read_text()
