"""Device and dtype resolution: ask for CUDA where there is none and you get an error, never a silent CPU run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlparity.errors import DeviceUnavailableError, UsageError

if TYPE_CHECKING:  # torch is imported where it is used: the pytest plugin checks options without paying for it
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
DEVICE_MAP_CHOICES = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's placement strategies


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda[:N]`` to a torch device that exists here."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"--device {name}: no CUDA device is available on this machine "
                f"(torch {torch.__version__}, cuda build {torch.version.cuda}). "
                "Use --device cpu, or run on a machine with a GPU."
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) exist; use cuda:0 … "
                f"cuda:{torch.cuda.device_count() - 1}."
            )
        return device
    raise UsageError(f"--device {name!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N).")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is float32 on every device: the parity reference, and what the tolerance profiles were measured in
    (an fp32 ONNX vision encoder judged against a bfloat16 original would fail on the reference's own rounding)."""
    import torch

    if name == "auto":
        return torch.float32
    if name not in DTYPE_CHOICES:
        raise UsageError(f"--dtype {name!r} is not one of {', '.join(DTYPE_CHOICES)}.")
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_device_map(name: str | None, device: torch.device | None = None) -> str | None:
    """``--device-map``: None (the whole model on ``--device``) or one of accelerate's placement strategies, which put
    the first layers on the first GPU where there is one: ``device`` (where inputs go) must then be CUDA."""
    if name in (None, "", "none"):
        return None
    if name not in DEVICE_MAP_CHOICES:
        raise UsageError(f"--device-map {name!r} is not one of none, {', '.join(DEVICE_MAP_CHOICES)}.")
    if device is not None and device.type == "cpu" and _cuda_available():
        raise UsageError(
            f"--device-map {name} places the language model on the GPUs, but --device is cpu. Use --device cuda (or "
            "auto) with it, or drop --device-map to run on the CPU."
        )
    return name


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
