"""The measurement helpers behind the benchmarks: FLOP counts, memory peaks, GEMM roofs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig

from vlparity.adapters import adapter_for
from vlparity.model_source import FIXTURES_DIR
from vlparity.perf.flops import vision_flops
from vlparity.perf.memory import track_memory
from vlparity.perf.real_size import real_size_config
from vlparity.perf.roofline import GemmPeak, RoofProbe, gemm_peak, ort_gemm_peak, torch_gemm_peak


def _meta_tower(family: str) -> torch.nn.Module:
    config = AutoConfig.from_pretrained(FIXTURES_DIR / family).vision_config
    with torch.device("meta"):
        return adapter_for(family, "test").vision_class._from_config(config)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_linear_flops_grow_linearly_with_patches(family: str) -> None:
    tower, adapter = _meta_tower(family), adapter_for(family, "test")
    small = vision_flops(tower, adapter, torch.tensor([[1, 16, 16]]))
    large = vision_flops(tower, adapter, torch.tensor([[1, 32, 32]]))
    assert large.linear == pytest.approx(4 * small.linear)
    if family == "qwen2_vl":  # one full-attention segment per image: quadratic in its patches
        assert large.attention == pytest.approx(16 * small.attention)


def test_windowed_blocks_cost_less_attention_than_full_ones() -> None:
    tower, adapter = _meta_tower("qwen2_5_vl"), adapter_for("qwen2_5_vl", "test")
    grid = torch.tensor([[1, 64, 64]])
    windowed = vision_flops(tower, adapter, grid)
    all_full = tower.config.fullatt_block_indexes
    tower.config.fullatt_block_indexes = list(range(len(tower.blocks)))
    try:
        full = vision_flops(tower, adapter, grid)
    finally:
        tower.config.fullatt_block_indexes = all_full
    # the fixture has 2 windowed blocks of 4: half the full-attention cost, plus 64-token windows (a few %)
    assert windowed.linear == full.linear and 0.5 * full.attention < windowed.attention < 0.52 * full.attention


def test_a_large_allocation_shows_in_the_resident_peak() -> None:
    with track_memory() as memory:
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
        block.sum()
    assert memory.rss_growth >= 48 * 1024 * 1024
    assert memory.cuda_peak is None


@pytest.mark.parametrize(
    "measure", [lambda: torch_gemm_peak(torch.float32, 256, 1), lambda: ort_gemm_peak("int8", 256, 1)]
)
def test_gemm_roofs_are_positive_and_finite(measure) -> None:
    peak = measure()
    assert 0 < peak.gflops < 1e6


def _scripted_roof(values: list[float], events: list[str]) -> RoofProbe:
    """A probe whose measurements return ``values`` in order and log when they happen."""
    readings = iter(values)

    def measure(kind: str, size: int) -> GemmPeak:
        events.append(f"probe {kind}")
        return GemmPeak(kind, next(readings), size)

    return RoofProbe(measure=measure)


def test_a_bracket_probes_right_before_and_right_after_its_body() -> None:
    events: list[str] = []
    roof = _scripted_roof([80.0, 120.0], events)
    with roof.bracket("ort fp32") as bracket:
        events.append("benchmark")
    assert events == ["probe ort fp32", "benchmark", "probe ort fp32"]
    assert bracket.probes == [80.0, 120.0] and bracket.gflops == 120.0


def test_the_probe_reports_how_far_the_roof_moved_during_the_run() -> None:
    roof = _scripted_roof([100.0, 60.0, 150.0], [])
    for _ in range(3):
        roof.probe("torch fp32")
    assert roof.spread() == {"torch fp32": (3, 60.0, 150.0)}


def test_an_unknown_gemm_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ort fp64"):
        gemm_peak("ort fp64", 64)


def test_the_real_size_model_ties_its_embeddings_like_the_published_3b(tmp_path) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    (tmp_path / "config.json").write_text(json.dumps(real_size_config()))
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(tmp_path))
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight


@pytest.mark.parametrize(("family", "width"), [("qwen3_vl", 2048), ("qwen3_vl_4b", 2560)])
def test_the_real_size_qwen3_vl_has_the_published_structure(tmp_path, family: str, width: int) -> None:
    """2B and 4B: tied embeddings, DeepStack at blocks 5, 11, 17 through their own mergers to the LM's width, a 48×48
    position table; the adapter accepts it, its DeepStack graph builds, and the FLOP count includes the DeepStack
    mergers at merged tokens."""
    from transformers import Qwen3VLForConditionalGeneration

    from vlparity.adapters import adapter_for
    from vlparity.perf.flops import vision_flops

    config = real_size_config(family)
    adapter = adapter_for("qwen3_vl")
    adapter.check_config(config, "real-size")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(AutoConfig.from_pretrained(tmp_path))
    vision = model.model.visual
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert list(vision.deepstack_visual_indexes) == [5, 11, 17] and len(vision.deepstack_merger_list) == 3
    assert vision.pos_embed.weight.shape == (2304, 1024) and len(vision.blocks) == 24
    assert model.config.text_config.hidden_size == width
    assert all(m.linear_fc2.out_features == width for m in (vision.merger, *vision.deepstack_merger_list))
    assert adapter.export_graph(vision).output_names()[:4] == ["image_embeds", "deepstack_0", "deepstack_1",
                                                                  "deepstack_2"]  # fmt: skip
    patches = 28 * 28  # a 448×448 image at patch 16
    merged = patches // 4

    def linear_flops(module: torch.nn.Module, tokens: int) -> float:
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        return sum(2.0 * tokens * m.in_features * m.out_features for m in linears)

    conv = 2.0 * patches * vision.patch_embed.proj.weight[0].numel() * vision.patch_embed.proj.out_channels
    expected = (linear_flops(vision.blocks, patches) + linear_flops(vision.merger, merged)
                + linear_flops(vision.deepstack_merger_list, merged) + conv)  # fmt: skip
    assert vision_flops(vision, adapter, torch.tensor([[1, 28, 28]])).linear == pytest.approx(expected)
