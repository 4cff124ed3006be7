"""Resolve ``--model`` (a local directory or a hub id) to a local checkpoint directory and its config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlparity.errors import ModelNotFoundError
from vlparity.hashing import digest_of, tree_sha256

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
DEFAULT_MODEL = FIXTURES_DIR / "qwen2_5_vl"


@dataclass(frozen=True)
class ModelSource:
    """A checkpoint on local disk: where it is, what the user called it, and its parsed ``config.json``."""

    reference: str
    directory: Path
    config: dict[str, Any]

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    def content_hash(self) -> str:
        """sha256 over every file of the checkpoint: the root of every artefact cache key."""
        return digest_of(tree_sha256(self.directory))


def resolve_model(reference: str | Path | None) -> ModelSource:
    """Find the checkpoint: an existing directory is used as is, anything else is treated as a hub id."""
    reference = str(reference) if reference is not None else str(DEFAULT_MODEL)
    path = Path(reference).expanduser()
    if path.exists():
        directory = path.resolve()
    elif reference.startswith((".", "/", "~")) or reference.count("/") != 1:
        raise ModelNotFoundError(
            f"--model {reference}: no such directory, and it is not a hub id of the form 'owner/name'. "
            "Pass a local checkpoint directory (with config.json) or a hub id such as Qwen/Qwen2.5-VL-3B-Instruct."
        )
    else:
        directory = _snapshot(reference)
    if not directory.is_dir():
        raise ModelNotFoundError(f"--model {reference}: {directory} is a file, not a checkpoint directory.")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ModelNotFoundError(
            f"--model {reference}: {directory} has no config.json, so it is not a Hugging Face checkpoint. "
            "Point --model at the directory that holds config.json and the *.safetensors weights."
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelNotFoundError(f"{config_path}: not valid JSON ({exc}); re-download or rebuild the model.") from exc
    return ModelSource(reference=reference, directory=directory, config=config)


def _snapshot(repo_id: str) -> Path:
    """Local snapshot of a hub model: from the HF cache, downloading only where the network allows it."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"]))
    except Exception as exc:  # the hub client raises many types: offline, 404, gated, …
        raise ModelNotFoundError(
            f"--model {repo_id}: not a local directory and the hub snapshot could not be obtained "
            f"({type(exc).__name__}: {exc}). Download it where there is network access "
            "(huggingface-cli download …) or pass its local directory."
        ) from exc
