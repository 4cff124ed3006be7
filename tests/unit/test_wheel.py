"""The built wheel works on its own: installed (not editable) into a fresh virtual environment, ``vlparity --help``
and ``vlparity run`` on the bundled fixture succeed from a directory outside the checkout, without pytest,
pytest-benchmark or hypothesis (dependencies of the test extras only)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_TOOLS = ["pytest", "_pytest", "hypothesis", "pytest_benchmark", "xdist"]


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel built from this checkout. Its dependencies come from this venv's site-packages
    through a .pth line (no multi-GB reinstall); the test tools are blocked there, so an import of one fails."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-w", root / "dist", "-q", cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    venv = root / "venv"
    assert _run(sys.executable, "-m", "venv", venv, cwd=root).returncode == 0
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                     cwd=root).stdout.strip())  # fmt: skip
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    blocked = ", ".join(repr(name) for name in TEST_TOOLS)
    (site / "zz_no_test_tools.pth").write_text(f"import sys; sys.modules.update(dict.fromkeys([{blocked}]))\n")
    wheel = next((root / "dist").glob("vlparity-*.whl"))
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheel, cwd=root)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_the_wheel_is_what_runs_and_it_carries_the_fixtures(installed_wheel: Path, tmp_path: Path) -> None:
    probe = "import vlparity, vlparity.model_source as m; print(vlparity.__file__, m.DEFAULT_MODEL.is_dir())"
    result = _run(installed_wheel / "bin" / "python", "-c", probe, cwd=tmp_path)
    location, has_fixture = result.stdout.split()
    assert str(installed_wheel) in location and str(REPO) not in location
    assert has_fixture == "True"


@pytest.mark.slow
def test_help_and_a_run_on_the_bundled_fixture_work_without_pytest(installed_wheel: Path, tmp_path: Path) -> None:
    vlparity = installed_wheel / "bin" / "vlparity"
    assert _run(installed_wheel / "bin" / "python", "-c", "import pytest", cwd=tmp_path).returncode != 0
    help_result = _run(vlparity, "--help", cwd=tmp_path)
    assert help_result.returncode == 0, help_result.stderr
    run = _run(vlparity, "run", "--paths", "original,split", "--max-new-tokens", "2", "--device", "cpu",
               "--output-dir", tmp_path / "cache", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "overall: PASS" in run.stdout
