"""Runners: each path is one way of running the model behind the same small interface (``PathRunner``)."""

from __future__ import annotations

from vlparity.errors import UsageError
from vlparity.paths.awq import AwqOnnxPath, AwqPath
from vlparity.paths.base import PathContext, PathRunner
from vlparity.paths.language import Generation
from vlparity.paths.onnx import OnnxFp16Path, OnnxInt8Path, OnnxPath
from vlparity.paths.original import OriginalPath
from vlparity.paths.split import SplitPath

REFERENCE_PATH = OriginalPath.name
PATHS: dict[str, type[PathRunner]] = {
    cls.name: cls for cls in (OriginalPath, SplitPath, OnnxPath, OnnxFp16Path, OnnxInt8Path, AwqPath, AwqOnnxPath)
}


def parse_path_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"original,split"`` or a list → validated, de-duplicated names, reference first; ``all`` = every path."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [item.strip() for item in items if item.strip()]
    if names == ["all"]:
        names = list(PATHS)
    unknown = [name for name in names if name not in PATHS]
    if unknown:
        raise UsageError(f"--paths: unknown path(s) {', '.join(unknown)}; available: {', '.join(PATHS)} (or all).")
    ordered = [REFERENCE_PATH] + [name for name in dict.fromkeys(names) if name != REFERENCE_PATH]
    return ordered


def create_path(name: str, context: PathContext) -> PathRunner:
    return PATHS[name](context)


__all__ = ["PATHS", "REFERENCE_PATH", "Generation", "PathContext", "PathRunner", "create_path", "parse_path_names"]
