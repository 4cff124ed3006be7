"""Shared objects for the benchmarks: one context on the bundled fixture (CPU, float32) and cached ONNX exports."""

from __future__ import annotations

import pytest
import torch

from vlparity.model_source import resolve_model
from vlparity.paths.base import PathContext


@pytest.fixture(scope="session")
def fixture_context(request: pytest.FixtureRequest) -> PathContext:
    cache = request.config.rootpath / ".vlparity-cache"
    return PathContext(resolve_model(None), torch.device("cpu"), torch.float32, cache)
