"""pytest-benchmark's own baseline workflow (raw medians; the perf gate, ``python -m vlparity.perf.gate``, judges
the normalised figures instead), run for real in throw-away projects:

pytest tests/perf --benchmark-autosave
pytest tests/perf --benchmark-compare --benchmark-compare-fail=median:15%
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PROJECT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"
SLEEPY_BENCHMARK = """
import os
import time


def test_sleepy(benchmark):
    benchmark.pedantic(time.sleep, args=(float(os.environ["SLEEP_S"]),), rounds=5, iterations=1)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(PROJECT_CONFTEST.read_text())
    pytester.makepyfile(test_bench=SLEEPY_BENCHMARK)
    return pytester


def _run(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sleep_s: float, *args: str):
    monkeypatch.setenv("SLEEP_S", str(sleep_s))
    # no vlparity plugin: these throw-away projects need only pytest-benchmark (and start in a second, not ten)
    return project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:vlparity", *args)


def test_compare_fail_passes_a_run_as_fast_as_the_baseline(project, monkeypatch) -> None:
    assert _run(project, monkeypatch, 0.02, "--benchmark-autosave").ret == 0
    result = _run(project, monkeypatch, 0.02, "--benchmark-compare", "--benchmark-compare-fail=median:15%")
    assert result.ret == 0, result.stdout.str()


def test_compare_fail_fails_a_run_three_times_slower_than_the_baseline(project, monkeypatch) -> None:
    assert _run(project, monkeypatch, 0.02, "--benchmark-autosave").ret == 0
    result = _run(project, monkeypatch, 0.06, "--benchmark-compare", "--benchmark-compare-fail=median:15%")
    assert result.ret != 0
    assert "Performance has regressed" in result.stdout.str() + result.stderr.str()


def test_baselines_are_stored_under_the_rootdir_whatever_the_working_directory(project, monkeypatch) -> None:
    elsewhere = project.mkdir("elsewhere")
    monkeypatch.chdir(elsewhere)
    assert _run(project, monkeypatch, 0.001, str(project.path / "test_bench.py"), "--benchmark-autosave").ret == 0
    assert list((project.path / ".benchmarks").rglob("*.json"))
    assert not (elsewhere / ".benchmarks").exists()
