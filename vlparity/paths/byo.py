"""Bring your own artefact: the ``split``, ``onnx``, ``awq`` and ``awq+onnx`` paths over an artefact built elsewhere
(Olive / ORT-GenAI export, Quark or hub AWQ checkpoint, a user's own split) instead of one vlparity builds.

The runners are the usual ones with their build-and-verify step replaced by the result of the contract check
(``vlparity.contracts``): an external artefact has no vlparity manifest, so its contract is what gets verified. Every
contract is checked before any runner is created, so a misfit artefact fails before any model work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vlparity.contracts import AwqArtefact, OnnxVisionArtefact, check_awq_dir, check_onnx_vision, check_split_dir
from vlparity.errors import UsageError
from vlparity.export.split import SPLIT_KIND
from vlparity.manifest import MANIFEST_NAME, verify_manifest
from vlparity.paths.awq import AWQ_KIND, AwqOnnxPath, AwqPath
from vlparity.paths.base import PathContext, PathRunner
from vlparity.paths.onnx import ONNX_KIND, OnnxPath
from vlparity.paths.split import SplitPath
from vlparity.quantize.awq import AwqSettings


@dataclass(frozen=True)
class ExternalArtefacts:
    """What the user passed: ``--onnx-vision FILE``, ``--awq-model DIR``, ``--split-dir DIR``."""

    onnx_vision: Path | None = None
    awq_model: Path | None = None
    split_dir: Path | None = None

    def given(self) -> list[str]:
        return [field.name for field in fields(self) if getattr(self, field.name) is not None]

    def describe(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.given()}


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


# Which external artefacts each path consumes (the split's LM also feeds onnx/awq paths, but only ``split`` judges a
# given split: the other paths keep vlparity's own, so a fault in one artefact shows up under one path name).
USES = {
    "split": ("split_dir",),
    "onnx": ("onnx_vision",),
    "awq": ("awq_model",),
    "awq+onnx": ("onnx_vision", "awq_model"),
}


def judged_paths(artefacts: ExternalArtefacts, names: list[str]) -> list[str]:
    """``names`` plus ``awq+onnx`` when both an ONNX encoder and an AWQ LM are given; every given artefact must be
    used by some path (a silently ignored ``--onnx-vision`` would look like a pass)."""
    names = list(names)
    if artefacts.onnx_vision and artefacts.awq_model and "awq+onnx" not in names:
        names.append("awq+onnx")
    for field_name in artefacts.given():
        if not any(field_name in USES.get(name, ()) for name in names):
            users = [name for name, uses in USES.items() if field_name in uses]
            raise UsageError(
                f"{option_name(field_name)} is given but none of the judged paths ({', '.join(names)}) uses it; "
                f"judge it under {' or '.join(users)} (e.g. --paths original,{users[0]})."
            )
    return names


class _External:
    """Shared by the runners below: the artefacts the user passed, for the report's ``details``."""

    external: ExternalArtefacts = ExternalArtefacts()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "external": self.external.describe()}


class ExternalSplitPath(_External, SplitPath):
    """``split`` over a given ``vision/`` + ``language/`` directory."""

    def _split_manifest(self) -> dict[str, Any]:
        return {}  # no vlparity manifest: check_split_dir has verified the layout, names and shapes


class ExternalOnnxVision(_External):
    """Mixin for ONNX paths: the given ``.onnx`` file replaces vlparity's export (when one is given)."""

    onnx_artefact: OnnxVisionArtefact | None = None

    def _vision_model(self) -> Path:
        if self.onnx_artefact is None:
            return super()._vision_model()
        return self.onnx_artefact.path

    @property
    def vision_block_outputs(self) -> Any:
        """Per-block diagnosis needs one ``block_<i>`` output per vision block; without them the attribute is absent,
        so the session skips that diagnosis instead of comparing lists of different lengths."""
        depth = self.context.source.config["vision_config"]["depth"]
        if self.onnx_artefact is not None and self.onnx_artefact.block_outputs != depth:
            raise AttributeError(f"{self.onnx_artefact.path} has no block_<i> output for each of the {depth} blocks")
        return super().vision_block_outputs

    def artefact_bytes(self) -> int | None:
        if self.onnx_artefact is None:
            return super().artefact_bytes()
        return sum(path.stat().st_size for path in self.onnx_artefact.files)


class ExternalAwq(_External):
    """Mixin for AWQ paths: the given checkpoint replaces vlparity's quantization (when one is given)."""

    awq_artefact: AwqArtefact | None = None

    def _awq_checkpoint(self) -> None:
        if self.awq_artefact is None:
            super()._awq_checkpoint()
            return
        self.awq_dir = self.awq_artefact.directory
        self.awq_settings = AwqSettings(group_size=self.awq_artefact.group_size, bits=self.awq_artefact.bits)


class ExternalOnnxPath(ExternalOnnxVision, OnnxPath):
    pass


class ExternalAwqPath(ExternalAwq, AwqPath):
    pass


class ExternalAwqOnnxPath(ExternalAwq, ExternalOnnxVision, AwqOnnxPath):
    pass


EXTERNAL_PATHS: dict[str, type[PathRunner]] = {
    "split": ExternalSplitPath,
    "onnx": ExternalOnnxPath,
    "awq": ExternalAwqPath,
    "awq+onnx": ExternalAwqOnnxPath,
}


def verify_if_vlparity_built(directory: Path, kind: str) -> None:
    """An artefact that still carries vlparity's manifest (a copied cache entry) is verified like a cached one: a
    changed byte is refused. Without one (or with another tool's manifest.json) the contract check alone applies."""
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return
    if isinstance(manifest, dict) and manifest.get("kind") == kind:
        verify_manifest(directory, kind)


def external_runners(context: PathContext, artefacts: ExternalArtefacts, names: list[str]) -> list[PathRunner]:
    """Verify the given artefacts' manifests where they have one and check every contract, then build one runner per
    path in ``names`` that uses one of them."""
    onnx_dir = artefacts.onnx_vision.parent if artefacts.onnx_vision else None
    for directory, kind in ((onnx_dir, ONNX_KIND), (artefacts.awq_model, AWQ_KIND), (artefacts.split_dir, SPLIT_KIND)):
        if directory is not None:
            verify_if_vlparity_built(directory, kind)
    onnx = check_onnx_vision(artefacts.onnx_vision, context) if artefacts.onnx_vision else None
    awq = check_awq_dir(artefacts.awq_model, context) if artefacts.awq_model else None
    split = check_split_dir(artefacts.split_dir, context) if artefacts.split_dir else None
    runners: list[PathRunner] = []
    for name in names:
        if not any(field_name in artefacts.given() for field_name in USES.get(name, ())):
            continue
        runner = ExternalSplitPath(context, split) if name == "split" else EXTERNAL_PATHS[name](context)
        runner.external = artefacts
        if isinstance(runner, ExternalOnnxVision):
            runner.onnx_artefact = onnx
        if isinstance(runner, ExternalAwq):
            runner.awq_artefact = awq
        runners.append(runner)
    return runners
