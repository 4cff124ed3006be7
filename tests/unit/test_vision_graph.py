"""The exportable vision graph: segment layouts are exact, and the eager graph reproduces the HF vision tower."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vlparity.adapters import adapter_for
from vlparity.export.vision_graph import ATTENTION_KINDS, segment_layout
from vlparity.model_source import FIXTURES_DIR

segment_lengths = st.lists(st.integers(0, 70), min_size=1, max_size=12).filter(lambda xs: sum(xs) > 0)


@given(segment_lengths)
def test_gather_visits_every_token_once_in_order(lengths: list[int]) -> None:
    layout = segment_layout(np.concatenate([[0], np.cumsum(lengths)]))
    assert layout.gather[layout.valid].tolist() == list(range(sum(lengths)))


@given(segment_lengths)
def test_scatter_inverts_gather(lengths: list[int]) -> None:
    layout = segment_layout(np.concatenate([[0], np.cumsum(lengths)]))
    assert layout.gather.reshape(-1)[layout.scatter].tolist() == list(range(sum(lengths)))
    assert layout.valid.reshape(-1)[layout.scatter].all()


def test_layout_pads_to_the_longest_segment() -> None:
    layout = segment_layout(np.array([0, 3, 8]))
    assert layout.gather.shape == (2, 5)
    assert layout.valid.sum(axis=1).tolist() == [3, 5]


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def tower(request: pytest.FixtureRequest):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(FIXTURES_DIR / request.param).eval()
    adapter = adapter_for(request.param)
    vision = adapter.vision_tower(model)
    return adapter, vision, {kind: adapter.export_graph(vision, kind).eval() for kind in ATTENTION_KINDS}


grids = st.lists(
    st.tuples(st.integers(1, 12).map(lambda x: 2 * x), st.integers(1, 12).map(lambda x: 2 * x)), min_size=1, max_size=3
)


@given(grids)
def test_eager_graph_matches_the_tower_for_any_grid(tower, grid: list[tuple[int, int]]) -> None:
    adapter, vision, graphs = tower
    grid_thw = torch.tensor([[1, h, w] for h, w in grid])
    pixel_values = torch.randn(
        int(grid_thw.prod(-1).sum()), 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(0)
    )
    inputs = {k: torch.from_numpy(v) for k, v in adapter.export_inputs(grid_thw, vision.config).items()}
    with torch.inference_mode():
        expected = vision(pixel_values, grid_thw=grid_thw).pooler_output
        for kind, graph in graphs.items():
            embeds, *blocks = graph(pixel_values, **inputs)
            assert len(blocks) == len(vision.blocks)
            # the onnx profile's atol: summation order differs (per-segment vs per-image SDPA), nothing else
            assert torch.allclose(embeds, expected, rtol=0, atol=1e-4), (kind, (embeds - expected).abs().max())
