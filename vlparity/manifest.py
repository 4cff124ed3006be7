"""Artefact manifests: what was written, from what, with which libraries; verified on every load."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from vlparity.errors import ArtefactError
from vlparity.hashing import tree_sha256

MANIFEST_NAME = "manifest.json"


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
    ``final_dir``; a concurrent writer that finished first wins and its result is kept.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        extra = build(tmp_dir)
        manifest = {"kind": kind, "versions": library_versions(), **extra, "files": tree_sha256(tmp_dir)}
        (tmp_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            tmp_dir.rename(final_dir)
        except OSError:
            if not (final_dir / MANIFEST_NAME).is_file():
                raise
    finally:
        with suppress(FileNotFoundError):
            shutil.rmtree(tmp_dir)
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
