"""Typed, expected failures. Each message names the offending file or argument and the remedy.

The CLI maps every ``VlparityError`` to exit code 2 without a traceback; anything else is a bug.
"""

from __future__ import annotations


class VlparityError(Exception):
    """Base class of every expected failure (bad usage, bad input, unusable artefact)."""


class UsageError(VlparityError):
    """A command-line option or plugin option has a value that cannot work."""


class DeviceUnavailableError(UsageError):
    """The requested device (e.g. ``cuda``) does not exist on this machine."""


class ModelNotFoundError(VlparityError):
    """``--model`` is neither a usable local directory nor a resolvable hub id."""


class UnsupportedModelError(VlparityError):
    """The model's architecture has no adapter."""


class InputFileError(VlparityError):
    """An input file (image, prompt file) is missing or unreadable."""


class ArtefactError(VlparityError):
    """A written artefact (split checkpoint, export) is incomplete, corrupted or does not match its manifest."""


class ArtefactContractError(ArtefactError):
    """An artefact built outside vlparity (``--onnx-vision``, ``--awq-model``, ``--split-dir``) does not fit the
    model's input/output contract; the message names the file, the mismatch (expected vs found) and the remedy."""


class ModelWeightsError(VlparityError):
    """``--model``'s weight files are unusable: not safetensors, truncated, or shaped unlike its ``config.json``."""


class PromptError(UsageError):
    """A prompt and its images disagree: an image placeholder without an image, or an image without a placeholder."""


class InputShapeError(UsageError):
    """An input does not fit a fixed-shape model (e.g. an image of another size fed to a ``--static-shape`` ONNX
    export); the message names the model, the expected and the given shape, and the remedy."""


class OutputNotWritableError(UsageError):
    """An output location (``--output-dir``, ``--cache-dir``, a ``--report-*`` file) cannot be written."""


class UnsafePathError(UsageError):
    """A name taken from an input would place a file outside the directory it belongs in (``..``, absolute, or a
    symlink that leads out)."""


class EvalSetError(InputFileError):
    """An eval set (``--eval-set``) is unusable: a missing file, a bad line, an unreadable image, an empty slice. The
    message names the file and line (or the spec) and the remedy."""
