"""The README's set-up (`make venv`, under `make demo` / `make test`) picks the torch build for the machine: CPU-only
where no NVIDIA driver answers, the default (CUDA) build where one does, or what ``TORCH_BUILD`` says. Read from
``make --dry-run``'s plan: a fake ``nvidia-smi`` stands for the driver (installing torch twice is minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def planned_setup(tmp_path: Path, driver_answers: bool, *make_args: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f"#!/bin/sh\nexit {0 if driver_answers else 1}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("TORCH_BUILD", None)
    return subprocess.run(["make", "--dry-run", "--always-make", "venv", *make_args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_machine_without_a_gpu_installs_the_cpu_only_torch_first(tmp_path: Path) -> None:
    plan = planned_setup(tmp_path, False)
    assert plan.returncode == 0, plan.stderr
    assert CPU_INDEX in plan.stdout and "torch torchvision" in plan.stdout


def test_a_machine_with_a_gpu_installs_the_default_build(tmp_path: Path) -> None:
    plan = planned_setup(tmp_path, True)
    assert plan.returncode == 0, plan.stderr
    assert CPU_INDEX not in plan.stdout


def test_torch_build_overrides_the_detection(tmp_path: Path) -> None:
    plan = planned_setup(tmp_path, False, "TORCH_BUILD=cuda")
    assert plan.returncode == 0, plan.stderr
    assert CPU_INDEX not in plan.stdout


def test_an_unknown_torch_build_is_refused_naming_the_choices(tmp_path: Path) -> None:
    plan = planned_setup(tmp_path, False, "TORCH_BUILD=gpu")
    assert plan.returncode != 0
    assert "TORCH_BUILD=gpu: expected cpu or cuda" in plan.stderr


@pytest.mark.parametrize("build", ["cpu", "cuda"])
def test_the_set_up_ends_saying_which_build_it_installed(build: str) -> None:
    """Its last line, run against this interpreter's torch: the build, and why it is not the one asked for."""
    report = subprocess.run(
        ["make", "--no-print-directory", f"VENV={sys.prefix}", f"TORCH_BUILD={build}", "--eval",
         'report-torch: ; @$(VENV)/bin/python -c "$$TORCH_REPORT"', "report-torch"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    installed = "(CUDA build)" if torch.version.cuda else "(CPU-only build)"
    assert report.stdout.startswith(f"vlparity: torch {torch.__version__} {installed} for TORCH_BUILD={build}")
    assert ("was not installable from https://download.pytorch.org/whl/cpu" in report.stdout) == (
        build == "cpu" and torch.version.cuda is not None
    )
