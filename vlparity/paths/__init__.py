"""Runners: each path is one way of running the model behind the same small interface (``PathRunner``)."""

from __future__ import annotations

from vlparity.path_names import PATH_NAMES, REFERENCE_PATH, parse_path_names
from vlparity.paths.awq import AwqOnnxPath, AwqPath
from vlparity.paths.base import PathContext, PathRunner
from vlparity.paths.language import Generation
from vlparity.paths.onnx import OnnxBf16Path, OnnxFp16Path, OnnxInt8Path, OnnxPath, OnnxQdqPath
from vlparity.paths.original import OriginalPath
from vlparity.paths.split import SplitPath

PATHS: dict[str, type[PathRunner]] = {
    cls.name: cls
    for cls in (
        OriginalPath,
        SplitPath,
        OnnxPath,
        OnnxFp16Path,
        OnnxInt8Path,
        OnnxBf16Path,
        OnnxQdqPath,
        AwqPath,
        AwqOnnxPath,
    )
}
if tuple(PATHS) != PATH_NAMES or OriginalPath.name != REFERENCE_PATH:  # the light name list must name every runner
    raise ImportError(f"vlparity.path_names lists {PATH_NAMES}, the runners are {tuple(PATHS)}")


def create_path(name: str, context: PathContext) -> PathRunner:
    return PATHS[name](context)


__all__ = ["PATHS", "REFERENCE_PATH", "Generation", "PathContext", "PathRunner", "create_path", "parse_path_names"]
