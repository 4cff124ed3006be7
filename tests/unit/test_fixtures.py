"""The bundled fixtures: offline-loadable, reproducible, small, and shaped to exercise the real machinery."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from vlparity import synthetic
from vlparity.inputs import fixture_images, fixture_prompts
from vlparity.model_source import FIXTURES_DIR

FAMILIES = ["qwen2_5_vl", "qwen2_vl"]


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request: pytest.FixtureRequest):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    directory = FIXTURES_DIR / request.param
    return (
        request.param,
        AutoModelForImageTextToText.from_pretrained(directory),
        AutoProcessor.from_pretrained(directory),
    )


def test_loads_offline_with_auto_classes(loaded) -> None:
    family, model, processor = loaded
    assert model.config.model_type == family
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id
    assert processor.chat_template and "<|im_start|>" in processor.chat_template


def test_language_linears_are_awq_compatible(loaded) -> None:
    _, model, _ = loaded
    linears = [m for m in model.model.language_model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 7 * model.config.text_config.num_hidden_layers
    for linear in linears:
        assert linear.in_features % 64 == 0 and linear.out_features % 64 == 0


def test_language_model_uses_grouped_query_attention(loaded) -> None:
    _, model, _ = loaded
    text = model.config.text_config
    assert text.num_key_value_heads < text.num_attention_heads


def test_vision_tower_exercises_blocks_and_merge(loaded) -> None:
    family, model, _ = loaded
    vision = model.config.vision_config
    assert vision.depth >= 2 and vision.spatial_merge_size == 2
    if family == "qwen2_5_vl":
        full = set(vision.fullatt_block_indexes)
        assert full and full != set(range(vision.depth)), "needs both windowed and full-attention blocks"


def test_fixtures_stay_under_20_mb() -> None:
    total = sum(path.stat().st_size for path in FIXTURES_DIR.rglob("*") if path.is_file())
    assert total < 20 * 1024 * 1024


def test_images_cover_odd_sizes_and_extreme_aspect_ratios() -> None:
    sizes = [Image.open(path).size for path in fixture_images()]
    assert any(w % 28 or h % 28 for w, h in sizes), "one image must not be a multiple of 28 px"
    assert any(max(w / h, h / w) >= 6 for w, h in sizes), "one image must be very wide (or tall)"
    assert len(set(sizes)) == len(sizes) >= 5
    assert len(fixture_prompts()) >= 2


def test_builder_reproduces_everything_but_the_trained_weights_exactly() -> None:
    """Tokenizer, configs, processor, images and prompts rebuild bit for bit (the weights take ~12 min to retrain:
    ``build_fixtures.py --check`` does that on demand, and training determinism is tested below)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(FIXTURES_DIR / "build_fixtures.py"), "--check", "--skip-weights"],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproduce exactly" in result.stdout


def test_training_is_deterministic() -> None:
    """Two short trainings from the same seed give identical weights (the full build relies on this)."""
    sys.path.insert(0, str(FIXTURES_DIR))
    try:
        from build_fixtures import FAMILIES, build_config, build_processor, build_tokenizer
        from training import TrainingPlan, train
    finally:
        sys.path.remove(str(FIXTURES_DIR))
    spec = FAMILIES["qwen2_5_vl"]
    states = []
    for _ in range(2):
        tokenizer = build_tokenizer()
        torch.manual_seed(spec.seed)
        model = spec.model_cls(build_config(spec, tokenizer))
        train(model, build_processor(spec, tokenizer), TrainingPlan(steps=3, batch_size=4, log_every=0))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


def test_trained_fixtures_answer_held_out_images(loaded) -> None:
    """≥ 90 % exact answers ("a <color> <shape>" then end-of-turn) on a fixed held-out set of new scenes."""
    _, model, processor = loaded
    result = synthetic.evaluate(model, processor, synthetic.heldout_scenes(60))
    assert result.accuracy >= 0.9, [generated for _, generated in result.failures]


def test_trained_fixtures_have_clear_logit_margins(loaded) -> None:
    """The reason the fixtures are trained: random weights had median top-1 margins of 0.05–0.15."""
    _, model, processor = loaded
    margins = sorted(synthetic.logit_margins(model, processor, synthetic.heldout_scenes(10)))
    assert margins[len(margins) // 2] > 3.0
