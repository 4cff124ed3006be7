"""Where a report came from: when, on which machine, from which vlparity commit, with which libraries.

A verdict is only as reproducible as its inputs: the same checkpoint judged with another onnxruntime or gptqmodel can
pass or fail differently, so the report names every library that shapes one. ``manifest.library_versions`` is not
widened for this: it keys the artefact caches, and a new key there would rebuild every cached artefact.
"""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from vlparity.manifest import library_versions

NOT_INSTALLED = "not installed"
# Distributions read from their metadata only (importing gptqmodel takes seconds and prints a banner); each name lists
# the distributions that provide it, the first installed one wins (onnxruntime-gpu installs the onnxruntime module).
VERDICT_LIBRARIES = {
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnxscript": ("onnxscript",),
    "gptqmodel": ("gptqmodel",),
    "autoawq": ("autoawq",),
    "accelerate": ("accelerate",),
    "tokenizers": ("tokenizers",),
}


def distribution_version(*distributions: str) -> str:
    """The version of the first of ``distributions`` that is installed, ``"not installed"`` if none is."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def verdict_library_versions() -> dict[str, str]:
    """``library_versions()`` plus every other library that shapes a verdict (export, ORT, AWQ kernels, tokenizer)."""
    extra = {name: distribution_version(*distributions) for name, distributions in VERDICT_LIBRARIES.items()}
    return {**library_versions(), **extra}


@dataclass(frozen=True)
class Provenance:
    """When (``timestamp``: UTC, ISO 8601, when the report was made), where (``host``, ``platform``, ``cpu``) and what
    (``commit``: HEAD of the vlparity checkout, ``dirty``: it has uncommitted changes; both None when vlparity is not
    run from a git checkout, e.g. installed from a wheel)."""

    timestamp: str
    host: str
    platform: str
    cpu: str | None
    commit: str | None
    dirty: bool | None


def collect_provenance() -> Provenance:
    """This process's provenance, stamped now."""
    timestamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    commit, dirty = vlparity_commit()
    return Provenance(timestamp, socket.gethostname(), platform.platform(), cpu_model(), commit, dirty)


@lru_cache(maxsize=1)
def cpu_model() -> str | None:
    """The CPU's marketing name (Linux: /proc/cpuinfo's ``model name``), else what ``platform`` knows, else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


@lru_cache(maxsize=1)
def vlparity_commit(checkout: Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, has uncommitted changes) of the git checkout vlparity runs from, or (None, None).

    Only a checkout whose top level holds the ``vlparity`` package counts: an installed vlparity inside the user's
    own repository (a venv in their project) must not report the user's commit as ours."""
    root = checkout or Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return None, None
    try:
        head = _git(git, root, "rev-parse", "HEAD")
        status = _git(git, root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head, bool(status)


def _git(git: str, root: Path, *arguments: str) -> str:
    command = [git, "-C", str(root), "-c", f"safe.directory={root}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
