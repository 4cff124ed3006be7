"""Large images (1344×1344 → 96×96 = 9216 patches): per-segment attention vs a block-diagonal mask, in ONNX Runtime.

The mask variant attends over all N patches in every block (O(N²) memory and time in windowed blocks too); the
segment layout keeps windowed blocks at O(N·64). Both are exact; the benchmark shows what the layout saves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlparity.export.onnx_vision import MODEL_NAME, ExportSettings
from vlparity.paths.onnx import build_onnx_vision
from vlparity.runtime.ort import AuditedSession, OrtOptions

GRIDS = {"448px": (32, 32), "1344px": (96, 96)}


@pytest.fixture(scope="module")
def sessions(fixture_context):
    return {
        kind: AuditedSession(
            build_onnx_vision(fixture_context, ExportSettings("fp32", attention=kind)) / MODEL_NAME, OrtOptions()
        )
        for kind in ("segments", "mask")
    }


def _feeds(context, grid: tuple[int, int]) -> dict[str, np.ndarray]:
    grid_thw = torch.tensor([[1, *grid]])
    pixel_values = torch.randn(grid[0] * grid[1], 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(0))
    vision_config = context.adapter.model_class.config_class.from_pretrained(context.source.directory).vision_config
    return {"pixel_values": pixel_values.numpy(), **context.adapter.export_inputs(grid_thw, vision_config)}


@pytest.mark.parametrize("size", list(GRIDS))
@pytest.mark.parametrize("attention", ["segments", "mask"])
def test_vision_encode_large_image(benchmark, sessions, fixture_context, attention: str, size: str) -> None:
    feeds = _feeds(fixture_context, GRIDS[size])
    session = sessions[attention]
    benchmark.group = f"onnx vision attention, {size}"
    benchmark.extra_info.update({"patches": int(feeds["pixel_values"].shape[0]), "attention": attention})
    rounds = 1 if size == "1344px" else 3  # bounded: the 1344px mask variant takes ~10 s a round on 2 cores
    (embeds,) = benchmark.pedantic(lambda: session.run(feeds, ["image_embeds"]), rounds=rounds, warmup_rounds=1)
    assert np.isfinite(embeds).all() and embeds.shape[0] == feeds["pixel_values"].shape[0] // 4
