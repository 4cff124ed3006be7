"""Content hashes of files and directory trees, used for manifests and for artefact cache keys.

Hashes are memoised per (path, size, mtime) so that a warm run does not re-read multi-GB checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        _memo[key] = digest.hexdigest()
    return _memo[key]


def tree_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted, skipping hidden entries (``.cache``, editor files)."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def tree_sha256(root: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``root``."""
    return {path.relative_to(root).as_posix(): file_sha256(path) for path in tree_files(root)}


def digest_of(value: Any) -> str:
    """Stable sha256 of a JSON-serialisable value (cache keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def clear_memo() -> None:
    """Forget memoised hashes (tests that rewrite a file within one mtime tick)."""
    _memo.clear()
