"""Small random-weight checkpoints built from configurations, for the conformance matrix and the crash tests.

Each ``Structure`` starts from a bundled fixture family's configuration (hidden 128, 2 LM layers, the fixture's
tokenizer, chat template and processor) and changes only the structural features that real checkpoints differ in:
tied word embeddings (Qwen2.5-VL-3B, Qwen2-VL-2B), the spatial merge size (transformers' own test suite uses 1), odd
MLP widths (its tester's intermediate size 37), the GQA ratio, the vision depth and, for Qwen2.5-VL, the window size
and the full-attention blocks; ``tester_dims`` swaps the widths for those of transformers' own test suite (hidden 32). A
checkpoint is built deterministically (fixed seed; two builds measured byte-identical) and cached by the digest of
everything written, so a warm run reads it from disk.

Weights keep transformers' default init (0.02), as a user's random checkpoint would. Its logits are flat: the
reference's top-1 margins on the conformance sample are 0.04-0.65 (seeds chosen there), above what a clean path changes
(fp32 ONNX vision max |Δ| ~4e-7, int8 ~2e-3). A wider init (0.05, 0.2) made the AWQ paths fail instead: larger
logits push the fp16 kernel error past its absolute limit and the quantization error past the top-k rule.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlparity.hashing import digest_of
from vlparity.manifest import write_artefact
from vlparity.model_source import FIXTURES_DIR
from vlparity.perf.real_size import QWEN3_VL_TOKENS_FROM, qwen3_vl_config, qwen3_vl_processor

CHECKPOINT_KIND = "conformance-checkpoint"
# The dimensions of transformers' own test suite (Qwen2_5_VLVisionText2TextModelTester): a new user's first small
# checkpoint. The vocabulary stays the fixture tokenizer's 512 rows (the tester has 99, fewer than the tokenizer needs).
TESTER_TEXT = {
    "hidden_size": 32,
    "num_attention_heads": 4,  # head_dim 8: mrope_section must sum to 4
    "num_hidden_layers": 4,
    "layer_types": ["full_attention"] * 4,
    "rope_parameters": {"mrope_section": [2, 1, 1], "rope_theta": 10000.0, "rope_type": "default"},
}
TESTER_VISION = {
    "qwen2_5_vl": {"hidden_size": 32, "intermediate_size": 32, "out_hidden_size": 32, "num_heads": 4},
    "qwen2_vl": {"embed_dim": 32, "hidden_size": 32, "num_heads": 4},  # hidden_size: the LM width it projects to
}
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


@dataclass(frozen=True)
class Structure:
    """One checkpoint's structural features (everything else is the fixture family's configuration)."""

    family: str  # "qwen2_5_vl" or "qwen2_vl"
    tied: bool = False
    merge_size: int = 2
    intermediate_size: int = 256
    kv_heads: int = 2  # of 4 query heads: 1 → GQA 4:1, 2 → 2:1, 4 → 1:1 (plain multi-head)
    vision_depth: int = 2
    fullatt_block_indexes: tuple[int, ...] = (1,)  # Qwen2.5-VL only
    window_size: int = 112  # Qwen2.5-VL only
    seed: int = 0
    tester_dims: bool = False  # widths of transformers' test suite (hidden 32) instead of the fixtures' (128)

    @property
    def label(self) -> str:
        parts = [
            self.family + ("-tester" if self.tester_dims else ""),
            "tied" if self.tied else "untied",
            f"merge{self.merge_size}",
            f"mlp{self.intermediate_size}",
            f"gqa{4 // self.kv_heads}to1",
            f"depth{self.vision_depth}",
        ]
        if self.family == "qwen2_5_vl":
            parts.append("full" + ("".join(map(str, self.fullatt_block_indexes)) or "none"))
            parts.append(f"win{self.window_size}")
        return "-".join(parts)


def structure_config(structure: Structure) -> dict[str, Any]:
    """The fixture family's config.json with ``structure``'s features applied."""
    config = json.loads((FIXTURES_DIR / structure.family / "config.json").read_text())
    if structure.tester_dims:
        config["text_config"].update(TESTER_TEXT)
        config["vision_config"].update(TESTER_VISION[structure.family])
    config["tie_word_embeddings"] = structure.tied
    config["text_config"].update(intermediate_size=structure.intermediate_size, num_key_value_heads=structure.kv_heads)
    vision = config["vision_config"]
    vision.update(depth=structure.vision_depth, spatial_merge_size=structure.merge_size)
    if structure.family == "qwen2_5_vl":
        vision.update(fullatt_block_indexes=list(structure.fullatt_block_indexes), window_size=structure.window_size)
    return config


def processor_config(structure: Structure) -> dict[str, Any]:
    """The fixture's processor with the merge size the vision tower expects (it sets the resize granularity)."""
    processor = json.loads((FIXTURES_DIR / structure.family / "processor_config.json").read_text())
    for part in ("image_processor", "video_processor"):
        processor[part]["merge_size"] = structure.merge_size
    return processor


def build_qwen3_vl_checkpoint(cache_dir: Path, seed: int = 0, **config: Any) -> Path:
    """A random-weight Qwen3-VL checkpoint (``qwen3_vl_config(**config)``) under ``cache_dir``, built on first use."""
    return _build(cache_dir, f"qwen3_vl-seed{seed}", qwen3_vl_config(**config), qwen3_vl_processor(),
                  QWEN3_VL_TOKENS_FROM, seed)  # fmt: skip


def build_checkpoint(structure: Structure, cache_dir: Path) -> Path:
    """The checkpoint directory for ``structure`` under ``cache_dir``, built on first use (about a second)."""
    return _build(cache_dir, structure.label, structure_config(structure), processor_config(structure),
                  structure.family, structure.seed)  # fmt: skip


def _build(cache_dir: Path, label: str, config: dict[str, Any], processor: dict[str, Any], tokens_from: str,
           seed: int) -> Path:  # fmt: skip
    key = digest_of({"label": label, "config": config, "processor": processor, "seed": seed})
    target = cache_dir / "checkpoints" / f"{label}-{key[:12]}"
    if (target / "manifest.json").is_file():
        return target

    def build(tmp: Path) -> dict[str, Any]:
        from transformers import AutoConfig, AutoModelForImageTextToText

        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(tmp), dtype=torch.float32)
        model.save_pretrained(tmp)
        (tmp / "processor_config.json").write_text(json.dumps(processor, indent=2))
        for name in COPIED_FILES:  # after save_pretrained, which writes a generation config of its own
            shutil.copy2(FIXTURES_DIR / tokens_from / name, tmp / name)
        return {"label": label, "seed": seed}

    return write_artefact(target, CHECKPOINT_KIND, build)
