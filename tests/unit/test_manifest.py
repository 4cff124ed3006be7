"""Artefacts appear atomically with a manifest, and a load refuses files that no longer match it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlparity.errors import ArtefactError
from vlparity.hashing import clear_memo
from vlparity.manifest import MANIFEST_NAME, verify_manifest, write_artefact


def _build(tmp: Path) -> dict:
    (tmp / "weights.bin").write_bytes(b"\x00" * 16)
    return {"source_model": "unit"}


def test_written_artefact_verifies(tmp_path: Path) -> None:
    artefact = write_artefact(tmp_path / "a", "unit", _build)
    manifest = verify_manifest(artefact, "unit")
    assert set(manifest["files"]) == {"weights.bin"} and manifest["source_model"] == "unit"
    assert "torch" in manifest["versions"]


def test_modified_file_is_refused(tmp_path: Path) -> None:
    artefact = write_artefact(tmp_path / "a", "unit", _build)
    (artefact / "weights.bin").write_bytes(b"\x01" * 16)
    clear_memo()
    with pytest.raises(ArtefactError, match=r"sha256 mismatch \['weights.bin'\]"):
        verify_manifest(artefact, "unit")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    artefact = write_artefact(tmp_path / "a", "unit", _build)
    (artefact / "weights.bin").unlink()
    with pytest.raises(ArtefactError, match="missing"):
        verify_manifest(artefact, "unit")


def test_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match=MANIFEST_NAME):
        verify_manifest(tmp_path, "unit")


def test_interrupted_build_leaves_nothing_behind(tmp_path: Path) -> None:
    def failing(tmp: Path) -> dict:
        (tmp / "half.bin").write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_artefact(tmp_path / "a", "unit", failing)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_builds_leftovers_are_removed_by_the_next_build(tmp_path: Path) -> None:
    leftover = tmp_path / ".a.tmp-killed"  # what a SIGKILLed builder leaves: its finally-clause never ran
    leftover.mkdir()
    (leftover / "half.bin").write_bytes(b"partial")
    other = tmp_path / ".b.tmp-live"  # another artefact's build: not ours to touch
    other.mkdir()
    write_artefact(tmp_path / "a", "unit", _build)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".b.tmp-live", "a"]


CONCURRENT_BUILDER = """
import sys, time
from pathlib import Path
from vlparity.manifest import BUILDS, write_artefact

def slow_build(tmp):
    time.sleep(1.0)  # long enough for the other process to arrive while this one builds
    (tmp / "weights.bin").write_bytes(b"\\x00" * 16)
    return {}

write_artefact(Path(sys.argv[1]), "unit", slow_build)
print(BUILDS["unit"])
"""


def test_concurrent_processes_build_an_artefact_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "builder.py"
    script.write_text(CONCURRENT_BUILDER)
    target = tmp_path / "cache" / "a"
    workers = [subprocess.Popen([sys.executable, script, target], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    builds = [int(worker.communicate(timeout=120)[0]) for worker in workers]
    assert sorted(builds) == [0, 1]
    assert set(verify_manifest(target, "unit")["files"]) == {"weights.bin"}
