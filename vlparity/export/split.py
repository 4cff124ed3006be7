"""Write the ``split`` artefact: ``vision/`` and ``language/`` saved apart as safetensors, plus a manifest.

Layout::

    vision/    config.json (vision config), model.safetensors (vision tower only), preprocessor_config.json
    language/  config.json (full model config), model.safetensors (LM + lm_head, no vision weights),
               generation_config.json, tokenizer.json, tokenizer_config.json, chat_template.jinja, processor_config.json
    manifest.json  sha256 of every file, library versions, source model and its content hash
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from vlparity.adapters import FamilyAdapter
from vlparity.devices import dtype_name
from vlparity.manifest import write_artefact
from vlparity.model_source import ModelSource

SPLIT_KIND = "split"
WEIGHTS_NAME = "model.safetensors"


def tied_weight_targets(model: nn.Module) -> set[str]:
    """Weights the model ties to another (``lm_head.weight`` → ``embed_tokens.weight`` when ``tie_word_embeddings``)
    per transformers' ``all_tied_weights_keys`` (target → source), and that *are* their source now: a checkpoint can
    say ``tie_word_embeddings`` yet hold its own lm_head, which transformers then leaves apart."""
    state = model.state_dict(keep_vars=True)
    mapping = getattr(model, "all_tied_weights_keys", None) or {}
    return {target for target, source in mapping.items() if target in state and state[target] is state.get(source)}


def language_state_dict(model: nn.Module, adapter: FamilyAdapter) -> dict[str, Any]:
    """Every tensor of the model except the vision tower's, detached and contiguous for safetensors.

    A tied weight is saved once, under its source's name, as ``save_pretrained`` does: safetensors refuses two names
    for one storage, and the loader re-ties the target to the source (``paths.split.load_language_model``).
    """
    tied = tied_weight_targets(model)
    return {
        key: tensor.detach().contiguous().cpu()
        for key, tensor in model.state_dict().items()
        if not key.startswith(adapter.vision_prefix) and key not in tied
    }


def write_split(model: nn.Module, processor: Any, adapter: FamilyAdapter, source: ModelSource, out_dir: Path) -> Path:
    """Save ``model`` (already loaded in the run's dtype) as a split artefact at ``out_dir``, atomically."""

    def build(tmp: Path) -> dict[str, Any]:
        vision_dir, language_dir = tmp / "vision", tmp / "language"
        adapter.vision_tower(model).save_pretrained(vision_dir, safe_serialization=True)
        processor.image_processor.save_pretrained(vision_dir)
        language_dir.mkdir()
        save_file(language_state_dict(model, adapter), language_dir / WEIGHTS_NAME, metadata={"format": "pt"})
        model.config.save_pretrained(language_dir)
        model.generation_config.save_pretrained(language_dir)
        processor.save_pretrained(language_dir)
        return {
            "source_model": source.reference,
            "source_sha256": source.content_hash(),
            "model_type": source.model_type,
            "dtype": dtype_name(model.dtype),
            "attn_implementation": model.config._attn_implementation,
        }

    return write_artefact(out_dir, SPLIT_KIND, build)
