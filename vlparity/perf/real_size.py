"""A real-size model for the ``--perf-size real`` benchmarks, built offline with random weights.

The vision tower has the published dimensions of Qwen2.5-VL-3B-Instruct (669 M parameters); the language model is a
slice of that model's LM (its layer width, the first ``LM_LAYERS`` layers, its tied word embeddings) over the
fixture's small tokenizer, so it fits 24 GiB and runs in minutes. Random weights are fine for speed and memory;
parity figures on it are only indicative.
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
MAX_PIXELS = 12845056  # the published processor's longest_edge: 896×896 images must not be downscaled


def real_size_config() -> dict[str, Any]:
    config = json.loads((FIXTURES_DIR / "qwen2_5_vl" / "config.json").read_text())
    config["vision_config"].update(QWEN2_5_VL_3B_VISION)
    config["text_config"].update(QWEN2_5_VL_3B_TEXT)
    config["tie_word_embeddings"] = QWEN2_5_VL_3B_TIED
    return config


def build_real_size_model(cache_dir: Path, seed: int = 0) -> Path:
    """Return the checkpoint directory (cached by its config and seed), creating it on first use (~1 min, 3.6 GB)."""
    config = real_size_config()
    target = cache_dir / "real-size" / digest_of({"config": config, "seed": seed})[:16]
    if (target / "manifest.json").is_file():
        return target

    def build(tmp: Path) -> dict[str, Any]:
        from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

        log.info("building the real-size random model (Qwen2.5-VL-3B vision, %d-layer LM slice)…", LM_LAYERS)
        (tmp / "config.json").write_text(json.dumps(config))
        torch.manual_seed(seed)
        written = AutoConfig.from_pretrained(tmp, trust_remote_code=False)  # the config.json written just above
        model = Qwen2_5_VLForConditionalGeneration._from_config(written, dtype=torch.float32)
        model.save_pretrained(tmp)
        for item in (FIXTURES_DIR / "qwen2_5_vl").iterdir():
            if item.suffix in (".json", ".jinja") and item.name not in ("config.json", "manifest.json"):
                shutil.copy2(item, tmp / item.name)
        processor_path = tmp / "processor_config.json"
        processor = json.loads(processor_path.read_text())
        for part in ("image_processor", "video_processor"):
            processor[part]["size"]["longest_edge"] = MAX_PIXELS
        processor_path.write_text(json.dumps(processor, indent=2))
        return {"seed": seed, "parameters": sum(p.numel() for p in model.parameters())}

    return write_artefact(target, REAL_SIZE_KIND, build)
