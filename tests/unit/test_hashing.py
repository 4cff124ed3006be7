"""Persistent sha256 cache: a warm second process takes a big file's hash from the store instead of re-reading it,
a changed file is re-hashed, and concurrent writers never leave a torn store.

A planted digest that no file has proves a cache hit without timing: only a lookup can return it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlparity.hashing import CACHE_ENV, PERSIST_MIN_BYTES

HASH_IN_A_NEW_PROCESS = """
import sys
from pathlib import Path
from vlparity.hashing import file_sha256
for name in sys.argv[1:]:
    print(file_sha256(Path(name)))
"""
PLANTED = "f" * 64


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "hash-cache" / "sha256.json"


def big_file(path: Path, content: bytes | None = None, age_s: float = 3600) -> Path:
    """A file large enough to be persisted, last modified ``age_s`` ago (older than the racy window)."""
    path.write_bytes(content if content is not None else os.urandom(PERSIST_MIN_BYTES))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    return big_file(tmp_path / "model.safetensors")


def start_hashing(store: Path, *paths: Path) -> subprocess.Popen:
    env = {**os.environ, CACHE_ENV: str(store)}
    command = [sys.executable, "-c", HASH_IN_A_NEW_PROCESS, *map(str, paths)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def hash_in_new_process(store: Path, path: Path) -> str:
    return start_hashing(store, path).communicate(timeout=60)[0].strip()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(store: Path) -> dict:
    return json.loads(store.read_text())["files"]


def plant(store: Path, path: Path, digest: str) -> None:
    data = json.loads(store.read_text())
    data["files"][str(path.resolve())]["sha256"] = digest
    store.write_text(json.dumps(data))


def test_a_big_files_hash_is_stored_with_its_size_mtime_and_inode(weights: Path, store: Path) -> None:
    digest = hash_in_new_process(store, weights)
    stat = weights.stat()
    assert digest == sha256_of(weights)
    assert stored(store) == {
        str(weights.resolve()): {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "inode": stat.st_ino,
            "sha256": digest,
        }
    }


def test_a_second_process_takes_the_hash_from_the_store(weights: Path, store: Path) -> None:
    hash_in_new_process(store, weights)
    plant(store, weights, PLANTED)
    assert hash_in_new_process(store, weights) == PLANTED


def _touch(path: Path) -> None:
    then = path.stat().st_mtime - 60
    os.utime(path, (then, then))


def _replace_keeping_size_and_mtime(path: Path) -> None:
    mtime_ns = path.stat().st_mtime_ns
    other = path.with_name("other")
    other.write_bytes(os.urandom(path.stat().st_size))
    os.utime(other, ns=(mtime_ns, mtime_ns))
    os.replace(other, path)  # a new inode: size and mtime alone would not tell


@pytest.mark.parametrize("change", [_touch, _replace_keeping_size_and_mtime], ids=["touched", "replaced"])
def test_a_changed_file_is_rehashed(weights: Path, store: Path, change) -> None:
    hash_in_new_process(store, weights)
    plant(store, weights, PLANTED)
    change(weights)
    assert hash_in_new_process(store, weights) == sha256_of(weights)
    assert stored(store)[str(weights.resolve())]["sha256"] == sha256_of(weights)


@pytest.mark.parametrize(
    ("size", "age_s"),
    [(PERSIST_MIN_BYTES - 1, 3600), (PERSIST_MIN_BYTES, 0)],
    ids=["small: hashing it is cheaper than the store", "modified just now: a same-tick rewrite would look unchanged"],
)
def test_files_that_are_not_persisted(tmp_path: Path, store: Path, size: int, age_s: float) -> None:
    path = big_file(tmp_path / "file.bin", os.urandom(size), age_s)
    assert hash_in_new_process(store, path) == sha256_of(path)
    assert not store.exists()


def test_a_corrupt_store_is_ignored_and_rewritten(weights: Path, store: Path) -> None:
    store.parent.mkdir(parents=True)
    store.write_text("{not json")
    assert hash_in_new_process(store, weights) == sha256_of(weights)
    assert set(stored(store)) == {str(weights.resolve())}


def test_entries_of_deleted_files_are_dropped(tmp_path: Path, weights: Path, store: Path) -> None:
    hash_in_new_process(store, weights)
    weights.unlink()
    other = big_file(tmp_path / "other.safetensors")
    hash_in_new_process(store, other)
    assert set(stored(store)) == {str(other.resolve())}


def test_concurrent_writers_leave_a_valid_store_with_only_true_hashes(tmp_path: Path, store: Path) -> None:
    """Each process hashes its own files at the same time; a lost update only costs a re-hash, never a wrong one."""
    groups = [[big_file(tmp_path / f"w{worker}-{index}.bin") for index in range(3)] for worker in range(4)]
    workers = [start_hashing(store, *group) for group in groups]
    for worker, group in zip(workers, groups, strict=True):
        assert worker.communicate(timeout=120)[0].split() == [sha256_of(path) for path in group]
    entries = stored(store)
    assert entries, "at least the last writer's entries survive"
    assert all(entry["sha256"] == sha256_of(Path(name)) for name, entry in entries.items())
