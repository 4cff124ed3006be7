"""A real-size model for the ``--perf-size real`` benchmarks, built offline with random weights.

The vision tower has the published dimensions of Qwen2.5-VL-3B-Instruct (669 M parameters) or, with ``--perf-family
qwen3_vl`` / ``qwen3_vl_4b``, of Qwen3-VL-2B / 4B-Instruct (24 blocks of 1024, DeepStack at blocks 5, 11, 17, a 48×48
learned position table, merged to 2048 / 2560); the language model is a slice of that model's LM (its layer width,
the first ``LM_LAYERS`` layers, its tied word embeddings) over the fixture's small tokenizer, so it fits 24 GiB and
runs in minutes. Random weights are fine
for speed and memory; parity figures on it are only indicative.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from vlparity.hashing import digest_of
from vlparity.manifest import write_artefact
from vlparity.model_source import FIXTURES_DIR

log = logging.getLogger(__name__)
REAL_SIZE_KIND = "real-size-model"
LM_LAYERS = 4
QWEN2_5_VL_3B_VISION = {  # Qwen/Qwen2.5-VL-3B-Instruct config.json, vision_config
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 2048,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "window_size": 112,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "hidden_act": "silu",
}
QWEN2_5_VL_3B_TEXT = {  # the same model's text_config, cut to LM_LAYERS layers
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "num_hidden_layers": LM_LAYERS,
    "layer_types": ["full_attention"] * LM_LAYERS,
    "rope_parameters": {"mrope_section": [16, 24, 24], "rope_theta": 1000000.0, "rope_type": "default"},
}
QWEN2_5_VL_3B_TIED = True  # the same config.json's tie_word_embeddings: lm_head is embed_tokens (one 2048-wide matrix)
# Qwen/Qwen3-VL-2B-Instruct: vision_config and text_config (cut to LM_LAYERS layers, still more than its 3 DeepStack
# levels), tied embeddings. From two independent copies of its config.json in public code (docs/engineering-notes.md).
QWEN3_VL_2B_VISION = {
    "depth": 24,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_heads": 16,
    "out_hidden_size": 2048,
    "deepstack_visual_indexes": [5, 11, 17],
    "num_position_embeddings": 2304,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "hidden_act": "gelu_pytorch_tanh",
}
QWEN3_VL_2B_TEXT = {
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "num_hidden_layers": LM_LAYERS,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 5000000.0,
        "mrope_section": [24, 20, 20],
        "mrope_interleaved": True,
    },
}
# Qwen/Qwen3-VL-4B-Instruct: the same tower, merged to the 4B LM's width (also from two public copies of config.json)
QWEN3_VL_4B_VISION = {**QWEN3_VL_2B_VISION, "out_hidden_size": 2560}
QWEN3_VL_4B_TEXT = {
    **QWEN3_VL_2B_TEXT,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
}
QWEN3_VL_SIZES = {
    "qwen3_vl": (QWEN3_VL_2B_VISION, QWEN3_VL_2B_TEXT),
    "qwen3_vl_4b": (QWEN3_VL_4B_VISION, QWEN3_VL_4B_TEXT),
}
QWEN3_VL_TOKENS_FROM = "qwen2_5_vl"  # the small Qwen3-VL configs borrow this fixture's tokenizer and chat template
MAX_PIXELS = 12845056  # the published processor's longest_edge: 896×896 images must not be downscaled


def real_size_config(family: str = "qwen2_5_vl") -> dict[str, Any]:
    if family in QWEN3_VL_SIZES:
        vision, text = QWEN3_VL_SIZES[family]
        config = qwen3_vl_config()
        config["vision_config"].update(vision)
        config["text_config"].update(text)
        return config
    config = json.loads((FIXTURES_DIR / "qwen2_5_vl" / "config.json").read_text())
    config["vision_config"].update(QWEN2_5_VL_3B_VISION)
    config["text_config"].update(QWEN2_5_VL_3B_TEXT)
    config["tie_word_embeddings"] = QWEN2_5_VL_3B_TIED
    return config


def qwen3_vl_config(tied: bool = True, deepstack: tuple[int, ...] = (0, 1, 2), lm_layers: int = 4) -> dict[str, Any]:
    """Qwen3-VL at the fixtures' widths (LM 128, vision 64, 8×8 position table), the published structure otherwise:
    patch 16, gelu_pytorch_tanh, no windows, DeepStack levels added after the first LM layers (the LM needs more
    layers than levels), interleaved MRoPE, q/k norms, tied embeddings (2B/4B); the Qwen2.5-VL fixture's tokens."""
    tokens = json.loads((FIXTURES_DIR / QWEN3_VL_TOKENS_FROM / "config.json").read_text())
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        "dtype": "float32",
        **{
            key: tokens[key]
            for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
        },
        "tie_word_embeddings": tied,
        "text_config": {
            "model_type": "qwen3_vl_text",
            "vocab_size": tokens["text_config"]["vocab_size"],
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": lm_layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "hidden_act": "silu",
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "tie_word_embeddings": tied,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [6, 5, 5],
                "mrope_interleaved": True,
            },
        },
        "vision_config": {
            "model_type": "qwen3_vl",
            "depth": 4,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 4,
            "out_hidden_size": 128,
            "hidden_act": "gelu_pytorch_tanh",
            "in_channels": 3,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": list(deepstack),
            "initializer_range": 0.02,
        },
    }


def qwen3_vl_processor() -> dict[str, Any]:
    """The fixture processor as Qwen3-VL publishes it: 16-pixel patches, mean and std 0.5 (the class defaults are
    Qwen2-VL's 14 and CLIP's statistics, which would mis-shape every patch)."""
    processor = json.loads((FIXTURES_DIR / QWEN3_VL_TOKENS_FROM / "processor_config.json").read_text())
    for part in ("image_processor", "video_processor"):
        processor[part].update(patch_size=16, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor["video_processor"]["video_processor_type"] = "Qwen3VLVideoProcessor"
    processor["processor_class"] = "Qwen3VLProcessor"
    return processor


def build_real_size_model(cache_dir: Path, seed: int = 0, family: str = "qwen2_5_vl") -> Path:
    """Return the checkpoint directory (cached by its config and seed), creating it on first use (~1 min, 3.6 GB)."""
    config = real_size_config(family)
    target = cache_dir / "real-size" / digest_of({"config": config, "seed": seed})[:16]
    if (target / "manifest.json").is_file():
        return target

    def build(tmp: Path) -> dict[str, Any]:
        from transformers import AutoConfig, AutoModelForImageTextToText

        log.info("building the real-size random %s model (%d-layer LM slice)…", family, LM_LAYERS)
        (tmp / "config.json").write_text(json.dumps(config))
        torch.manual_seed(seed)
        written = AutoConfig.from_pretrained(tmp, trust_remote_code=False)  # the config.json written just above
        model = AutoModelForImageTextToText.from_config(written, dtype=torch.float32)
        model.save_pretrained(tmp)
        for item in (FIXTURES_DIR / "qwen2_5_vl").iterdir():
            if item.suffix in (".json", ".jinja") and item.name not in ("config.json", "manifest.json"):
                shutil.copy2(item, tmp / item.name)
        processor_path = tmp / "processor_config.json"
        if family in QWEN3_VL_SIZES:
            processor_path.write_text(json.dumps(qwen3_vl_processor(), indent=2))
        processor = json.loads(processor_path.read_text())
        for part in ("image_processor", "video_processor"):
            processor[part]["size"]["longest_edge"] = MAX_PIXELS
        processor_path.write_text(json.dumps(processor, indent=2))
        return {"seed": seed, "parameters": sum(p.numel() for p in model.parameters())}

    return write_artefact(target, REAL_SIZE_KIND, build)
