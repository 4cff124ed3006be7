"""Path names and ``--paths`` parsing, importable without torch: the pytest plugin validates its options at start-up
without paying for the runners (``vlparity.paths`` maps each name to its runner class)."""

from __future__ import annotations

from vlparity.errors import UsageError

REFERENCE_PATH = "original"
PATH_NAMES: tuple[str, ...] = (
    "original", "split", "onnx", "onnx-fp16", "onnx-int8", "onnx-bf16", "onnx-qdq", "awq", "awq+onnx"
)  # fmt: skip


def parse_path_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"original,split"`` or a list → validated, de-duplicated names, reference first; ``all`` = every path."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [item.strip() for item in items if item.strip()]
    if names == ["all"]:
        names = list(PATH_NAMES)
    unknown = [name for name in names if name not in PATH_NAMES]
    if unknown:
        raise UsageError(f"--paths: unknown path(s) {', '.join(unknown)}; available: {', '.join(PATH_NAMES)} (or all).")
    return [REFERENCE_PATH] + [name for name in dict.fromkeys(names) if name != REFERENCE_PATH]
