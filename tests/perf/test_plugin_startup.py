"""What the vlparity plugin costs a pytest run that uses none of it: one trivial test run with the plugin loaded and
with ``-p no:vlparity``, benchmarked side by side in one session (target: within 10 %)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

VARIANTS = {"plugin loaded": (), "-p no:vlparity": ("-p", "no:vlparity")}
_medians: dict[str, float] = {}


@pytest.fixture(scope="module")
def unrelated_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of someone else's: its own ini (so rootdir is here) and one test that has nothing to do with VLMs."""
    directory = tmp_path_factory.mktemp("unrelated")
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_trivial.py").write_text("def test_trivial():\n    assert 1 + 1 == 2\n")
    return directory


def _run_pytest(directory: Path, extra: tuple[str, ...]) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    subprocess.run(command, cwd=directory, check=True, capture_output=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_trivial_pytest_run(benchmark, unrelated_project: Path, variant: str) -> None:
    benchmark.group = "pytest start-up: a trivial unrelated test"
    benchmark.pedantic(_run_pytest, args=(unrelated_project, VARIANTS[variant]), rounds=7, warmup_rounds=1)
    _medians[variant] = benchmark.stats.stats.median
    if len(_medians) == len(VARIANTS):
        ratio = _medians["plugin loaded"] / _medians["-p no:vlparity"]
        benchmark.extra_info["plugin_over_no_plugin"] = round(ratio, 3)
