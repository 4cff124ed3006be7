"""Provenance: which vlparity commit ran (never the user's repository), and the version of every library that shapes
a verdict, read without importing it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vlparity.manifest import library_versions
from vlparity.provenance import (
    NOT_INSTALLED,
    VERDICT_LIBRARIES,
    collect_provenance,
    distribution_version,
    verdict_library_versions,
    vlparity_commit,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _repository(root: Path) -> str:
    """A one-commit git repository at ``root``; its HEAD."""
    root.mkdir(parents=True, exist_ok=True)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (root / "tracked.txt").write_text("1")
    subprocess.run([*git, "add", "tracked.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


@needs_git
def test_a_checkout_reports_its_head_and_whether_it_was_modified(tmp_path: Path) -> None:
    head = _repository(tmp_path / "vlparity-checkout")
    assert vlparity_commit(tmp_path / "vlparity-checkout") == (head, False)
    (tmp_path / "vlparity-checkout" / "tracked.txt").write_text("2")
    assert vlparity_commit.__wrapped__(tmp_path / "vlparity-checkout") == (head, True)


@needs_git
def test_an_install_inside_the_users_repository_reports_no_commit(tmp_path: Path) -> None:
    _repository(tmp_path / "users-project")
    site_packages = tmp_path / "users-project" / ".venv" / "lib" / "site-packages"
    site_packages.mkdir(parents=True)
    assert vlparity_commit(site_packages) == (None, None)


def test_the_timestamp_is_utc_iso_8601() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", collect_provenance().timestamp)


def test_a_missing_distribution_reads_not_installed() -> None:
    assert distribution_version("no-such-distribution-vlparity") == NOT_INSTALLED
    assert distribution_version("no-such-distribution-vlparity", "numpy") != NOT_INSTALLED  # the first installed


def test_verdict_versions_extend_the_cache_keying_versions_without_changing_them() -> None:
    cache_keys = library_versions()
    versions = verdict_library_versions()
    assert {key: versions[key] for key in cache_keys} == cache_keys
    assert versions.keys() - cache_keys.keys() == set(VERDICT_LIBRARIES)
    assert set(cache_keys) == {"vlparity", "python", "torch", "transformers", "safetensors", "numpy"}
    assert versions["onnxruntime"] != NOT_INSTALLED  # a dependency of vlparity itself
