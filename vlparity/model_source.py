"""Resolve ``--model`` (a local directory or a hub id) to a local checkpoint directory and its config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlparity.errors import ModelNotFoundError, ModelWeightsError
from vlparity.hashing import digest_of, tree_sha256
from vlparity.safe_paths import safe_join

# vlparity/_fixtures links to the checkout's fixtures/ and holds its files in an installed wheel: one lookup for both
FIXTURES_DIR = (Path(__file__).parent / "_fixtures").resolve()
FIXTURE_FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")  # one trained checkpoint each under FIXTURES_DIR
DEFAULT_MODEL = FIXTURES_DIR / "qwen2_5_vl"
INDEX_NAME = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


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

    def check_weight_files(self) -> None:
        """Before any load: the weights are safetensors (a pickle-based ``*.bin`` can run code and is never loaded),
        every shard the index names exists inside the checkpoint, and every file's header and data are complete."""
        files = sorted(self.directory.glob("*.safetensors"))
        if not files:
            pickles = sorted(path.name for path in self.directory.iterdir() if path.suffix in PICKLE_SUFFIXES)
            found = f" (only {', '.join(pickles)}: pickle-based, which vlparity never loads)" if pickles else ""
            raise ModelWeightsError(
                f"--model {self.reference}: {self.directory} has no *.safetensors weights{found}. Download the "
                "safetensors files, or convert the checkpoint in a trusted environment "
                "(model.save_pretrained(dir, safe_serialization=True))."
            )
        index = self.directory / INDEX_NAME
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
            except (ValueError, AttributeError) as exc:
                raise ModelWeightsError(
                    f"--model {self.reference}: {INDEX_NAME} is not a valid index ({exc}); download it again."
                ) from exc
            missing = sorted(name for name in shards if not safe_join(self.directory, name, INDEX_NAME).is_file())
            if missing:
                raise ModelWeightsError(
                    f"--model {self.reference}: {INDEX_NAME} names shard(s) that are not there: {', '.join(missing)}. "
                    "The download is incomplete; download the missing files again."
                )
        for path in files:
            _check_safetensors(path, self.reference)


def _check_safetensors(path: Path, reference: str) -> None:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt"):
            pass
    except Exception as exc:  # SafetensorError (truncated, not safetensors), OSError
        raise ModelWeightsError(
            f"--model {reference}: {path.name} is not a readable safetensors file ({exc}). It is truncated or "
            "damaged: download it again (or re-save the checkpoint)."
        ) from exc


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
