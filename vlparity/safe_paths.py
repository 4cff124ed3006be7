"""Paths built from names that come from inputs (file names in an artefact, locations recorded in a model): they must
stay inside the directory they are joined to, and output locations must be writable before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from vlparity.errors import OutputNotWritableError, UnsafePathError


def safe_join(root: Path, name: str | Path, what: str = "name") -> Path:
    """``root / name``, refused when ``name`` is absolute, climbs with ``..`` or resolves (through symlinks) outside
    ``root``. ``what`` says where the name came from, for the message."""
    relative = Path(name)
    if relative.is_absolute() or relative.anchor or ".." in relative.parts or not relative.parts:
        raise UnsafePathError(
            f"{what} {str(name)!r}: not a plain relative name inside {root}. Names taken from inputs may not be "
            "absolute or contain '..'; rename the file (or fix the reference to it)."
        )
    joined = Path(root) / relative
    resolved, resolved_root = joined.resolve(), Path(root).resolve()
    if not resolved.is_relative_to(resolved_root):
        raise UnsafePathError(
            f"{what} {str(name)!r}: {joined} resolves to {resolved}, outside {resolved_root} (a symlink leads out). "
            "Replace the symlink with the file itself."
        )
    return joined


def check_writable_dir(path: Path, option: str) -> None:
    """Refuse, before any work, an output directory that cannot be created or written: its nearest existing ancestor
    must be a directory this process may write (nothing is created here)."""
    path = Path(path)
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputNotWritableError(
            f"{option} {path}: cannot be created, {probe} is a file, not a directory. Choose a directory path "
            "(or remove the file)."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputNotWritableError(
            f"{option} {path}: {probe} is not writable by this user. Choose a writable directory or fix its "
            "permissions."
        )
