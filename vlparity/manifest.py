"""Artefact manifests: what was written, from what, with which libraries; verified on every load."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from vlparity.errors import ArtefactError
from vlparity.hashing import tree_sha256

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.json"
BUILDS: Counter[str] = Counter()  # artefacts this process built, by kind (tests count them; a cache hit adds nothing)


def library_versions() -> dict[str, str]:
    import numpy
    import safetensors
    import torch
    import transformers

    import vlparity

    return {
        "vlparity": vlparity.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def write_artefact(final_dir: Path, kind: str, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Build an artefact in a temporary sibling directory, add its manifest, then rename it into place.

    ``build(tmp_dir)`` writes the files and returns extra manifest fields. An interrupted build leaves nothing at
    ``final_dir``. Builders of the same artefact in other processes (pytest-xdist workers, two CLI runs) wait on a
    file lock beside it and then reuse what the first one built, so each artefact is built once.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final_dir.parent / f".{final_dir.name}.lock"
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish building %s…", final_dir)
        lock.acquire()
    try:
        if (final_dir / MANIFEST_NAME).is_file():
            return final_dir
        _remove_leftovers(final_dir)
        return _build_and_rename(final_dir, kind, build)
    finally:
        lock.release()
        # Leave no lock file in the user's folders. A waiter holding the unlinked file still gets it, and finds the
        # finished artefact; a newcomer finds the artefact before it needs a lock.
        with suppress(OSError):
            lock_path.unlink()


def _remove_leftovers(final_dir: Path) -> None:
    """Delete temporary directories of earlier builds of this artefact that were killed (SIGKILL, out of memory,
    power loss) before their cleanup ran: real-size ones hold gigabytes. Called with the artefact's lock held, so no
    live builder owns them."""
    for leftover in final_dir.parent.glob(f".{final_dir.name}.tmp-*"):
        log.info("removing %s, left by a build that was killed", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _build_and_rename(final_dir: Path, kind: str, build: Callable[[Path], dict[str, Any]]) -> Path:
    started = time.perf_counter()
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        extra = build(tmp_dir)
        manifest = {"kind": kind, "versions": library_versions(), **extra, "files": tree_sha256(tmp_dir)}
        (tmp_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            tmp_dir.rename(final_dir)
        except OSError:  # another writer finished first (only possible once a failed build dropped the lock)
            if not (final_dir / MANIFEST_NAME).is_file():
                raise
            return final_dir
    except KeyboardInterrupt as exc:
        exc.add_note(f"building {final_dir} was interrupted; its temporary directory was removed, nothing was written")
        raise
    finally:
        with suppress(FileNotFoundError):
            shutil.rmtree(tmp_dir)
    BUILDS[kind] += 1
    log.info("built %s in %.1f s: %s", kind, time.perf_counter() - started, final_dir)
    return final_dir


def read_manifest(artefact_dir: Path, kind: str) -> dict[str, Any]:
    path = artefact_dir / MANIFEST_NAME
    if not path.is_file():
        raise ArtefactError(
            f"{artefact_dir}: no {MANIFEST_NAME}; this is not a complete vlparity {kind} artefact. "
            "Delete the directory and let vlparity rebuild it."
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtefactError(f"{path}: not valid JSON ({exc}). Delete {artefact_dir} and rebuild it.") from exc
    if manifest.get("kind") != kind:
        raise ArtefactError(f"{path}: artefact kind is {manifest.get('kind')!r}, expected {kind!r}.")
    return manifest


def verify_manifest(artefact_dir: Path, kind: str) -> dict[str, Any]:
    """Check every file listed in the manifest exists with the recorded sha256; refuse the artefact otherwise."""
    manifest = read_manifest(artefact_dir, kind)
    actual = {name: digest for name, digest in tree_sha256(artefact_dir).items() if name != MANIFEST_NAME}
    expected = manifest.get("files", {})
    missing = sorted(expected.keys() - actual.keys())
    changed = sorted(name for name in expected.keys() & actual.keys() if expected[name] != actual[name])
    if missing or changed:
        detail = "; ".join(filter(None, [missing and f"missing {missing}", changed and f"sha256 mismatch {changed}"]))
        raise ArtefactError(
            f"{artefact_dir}: files do not match {MANIFEST_NAME} ({detail}). The artefact was modified or is "
            "incomplete; delete it and let vlparity rebuild it."
        )
    return manifest
