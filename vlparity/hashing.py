"""Content hashes of files and directory trees, used for manifests and for artefact cache keys.

Hashes are memoised per (absolute path, size, mtime, inode) so that a warm run does not re-read multi-GB checkpoints:
in process, and across processes in a small JSON store (``$VLPARITY_HASH_CACHE``, default
``$XDG_CACHE_HOME/vlparity/sha256.json``; ``off`` disables it). The store is replaced atomically; two processes
writing at once may lose one entry, which costs one re-hash, never a wrong hash. Files smaller than
``PERSIST_MIN_BYTES`` hash faster than the store is written and are memoised in process only; files modified in the
last ``RACY_SECONDS`` are not persisted either (a same-size rewrite within one mtime tick would look unchanged).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
CACHE_ENV = "VLPARITY_HASH_CACHE"
PERSIST_MIN_BYTES = 1 << 20
RACY_SECONDS = 2.0
_STORE_VERSION = 1
_memo: dict[tuple[str, int, int, int], str] = {}


def hash_cache_file() -> Path | None:
    """Where the persistent hashes live, or None when ``$VLPARITY_HASH_CACHE`` is ``off`` (or empty)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "none") else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vlparity" / "sha256.json"


def _entry(stat: os.stat_result, digest: str) -> dict[str, Any]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "sha256": digest}


def _matches(entry: Any, stat: os.stat_result) -> bool:
    return isinstance(entry, dict) and all(
        entry.get(key) == value
        for key, value in (("size", stat.st_size), ("mtime_ns", stat.st_mtime_ns), ("inode", stat.st_ino))
    )


def _read_store(path: Path) -> dict[str, Any]:
    """The persisted entries by absolute path; an absent, unreadable or foreign file reads as empty."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("version") == _STORE_VERSION else None
    return files if isinstance(files, dict) else {}


def _still_valid(name: str, entry: Any) -> bool:
    try:
        return _matches(entry, os.stat(name)) and isinstance(entry.get("sha256"), str)
    except OSError:
        return False


def _persist(name: str, stat: os.stat_result, digest: str) -> None:
    """Merge one entry into the store (dropping entries of deleted or changed files) and replace it atomically."""
    store = hash_cache_file()
    if store is None:
        return
    files = {key: value for key, value in _read_store(store).items() if key != name and _still_valid(key, value)}
    files[name] = _entry(stat, digest)
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{store.name}.", dir=store.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"version": _STORE_VERSION, "files": files}, handle, sort_keys=True)
            os.replace(tmp, store)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:  # a read-only home or cache: hashing still works, only slower next time
        log.debug("hash cache %s not written: %s", store, exc)


def _persisted(name: str, stat: os.stat_result) -> str | None:
    store = hash_cache_file()
    entry = _read_store(store).get(name) if store is not None else None
    return entry["sha256"] if _matches(entry, stat) and isinstance(entry.get("sha256"), str) else None


def _compute(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    name = str(Path(path).resolve())
    stat = os.stat(name)
    key = (name, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _memo:
        return _memo[key]
    persistable = stat.st_size >= PERSIST_MIN_BYTES and time.time_ns() - stat.st_mtime_ns > RACY_SECONDS * 1e9
    digest = _persisted(name, stat) if persistable else None
    if digest is None:
        digest = _compute(Path(name))
        if persistable:
            _persist(name, stat, digest)
    _memo[key] = digest
    return digest


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
    """Forget hashes memoised in this process (tests that rewrite a file within one mtime tick); the persistent store
    never holds such files (``RACY_SECONDS``)."""
    _memo.clear()
