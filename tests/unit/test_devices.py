"""Device/dtype resolution: CUDA that does not exist is an error, never a silent CPU run."""

from __future__ import annotations

import pytest
import torch

from vlparity.devices import resolve_device, resolve_dtype
from vlparity.errors import DeviceUnavailableError, UsageError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_usage_error(name: str) -> None:
    with pytest.raises(DeviceUnavailableError, match=r"no CUDA device is available.*--device cpu"):
        resolve_device(name)


@no_cuda
def test_auto_picks_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")


def test_unknown_device_names_the_choices() -> None:
    with pytest.raises(UsageError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def test_dtype_auto_is_float32_everywhere() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
