"""``split``: vision tower and language model saved apart, reloaded apart, chained through image embeddings.

This is the first cut every deployment makes; on CPU fp32 it must reproduce ``original`` bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from vlparity import progress
from vlparity.adapters import FamilyAdapter
from vlparity.devices import dtype_name
from vlparity.errors import ArtefactError
from vlparity.export.split import SPLIT_KIND, WEIGHTS_NAME, tied_weight_targets, write_split
from vlparity.hashing import digest_of
from vlparity.inputs import Sample
from vlparity.manifest import library_versions, verify_manifest
from vlparity.paths.base import PathContext, PathRunner, capture_block_outputs, check_source, realign_parameters
from vlparity.paths.original import load_original
from vlparity.vision_features import VisionFeatures


class VisionTowerRemoved(nn.Module):
    """Stands in for the vision tower in a language-only model: holds no weights, refuses to run."""

    def forward(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the language-only model was asked to run its vision tower; pass mm_encoder_outputs")


def split_cache_dir(context: PathContext) -> Path:
    """Artefact location keyed by source content, dtype and library versions (a changed weight → a new split)."""
    key = digest_of(
        {"source": context.source.content_hash(), "dtype": dtype_name(context.dtype), "versions": library_versions()}
    )
    return context.cache_dir / "split" / key[:16]


def load_vision_tower(adapter: FamilyAdapter, vision_dir: Path, context: PathContext, attn: str) -> nn.Module:
    vision = adapter.vision_class.from_pretrained(
        vision_dir, dtype=context.dtype, attn_implementation=attn, trust_remote_code=context.trust_remote_code
    )
    return realign_parameters(vision).to(context.device).eval()


def load_language_model(adapter: FamilyAdapter, language_dir: Path, context: PathContext, attn: str) -> nn.Module:
    """Build the model skeleton on the meta device, drop its vision tower, then load only the LM weights.

    The vision weights are never allocated, which proves the LM needs nothing from them but embeddings. With
    ``--device-map`` the LM is loaded on the CPU, then accelerate places its layers over the visible devices.
    """
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(language_dir, trust_remote_code=context.trust_remote_code)
    config._attn_implementation = attn
    with torch.device("meta"):
        model = adapter.model_class(config)
    adapter.detach_vision_tower(model, VisionTowerRemoved())
    device = torch.device("cpu") if context.device_map else context.device
    state = _load_aligned(language_dir / WEIGHTS_NAME, device)
    load_tied_state_dict(model, state, language_dir / WEIGHTS_NAME)
    materialise_buffers(model, device)
    model.generation_config = GenerationConfig.from_pretrained(
        language_dir, trust_remote_code=context.trust_remote_code
    )
    return dispatch(model, context.device_map) if context.device_map else model.eval()


def load_tied_state_dict(model: nn.Module, state: dict[str, torch.Tensor], origin: Path) -> None:
    """Assign ``state`` to a meta-device skeleton and re-tie its tied weights (``tie_word_embeddings``): the split
    saves a tied weight once, under its source's name, so the target must point at the very same tensor again."""
    tied = tied_weight_targets(model)
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = [key for key in result.missing_keys if key not in tied]
    if missing or result.unexpected_keys:
        raise ArtefactError(
            f"{origin}: does not fit the {type(model).__name__} language model "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}). Rebuild the split."
        )
    if tied:  # as from_pretrained does: re-tie a target the file lacks, leave apart weights the file holds apart
        model.tie_weights(missing_keys=set(result.missing_keys), recompute_mapping=False)


def dispatch(model: nn.Module, strategy: str) -> nn.Module:
    """Place a loaded model's layers over the visible devices as ``from_pretrained(device_map=strategy)`` would
    (accelerate: ``infer_auto_device_map`` on balanced memory, never splitting a decoder layer, then
    ``dispatch_model``); the placement is in ``model.hf_device_map``."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    no_split = list(getattr(model, "_no_split_modules", None) or [])
    max_memory = None
    if strategy != "sequential":
        max_memory = get_balanced_memory(model, no_split_module_classes=no_split, low_zero=strategy == "balanced_low_0")
    device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split)
    return dispatch_model(model, device_map).eval()


def _load_aligned(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """Load safetensors into freshly allocated tensors.

    Tensors returned by ``safetensors.torch.load_file`` sit at arbitrary offsets of one buffer; CPU GEMM kernels pick
    different code paths for unaligned operands and the logits then differ from ``from_pretrained``'s in the last bit
    (measured: max |Δlogit| 2e-7 during generation). A copy into a new allocation restores bit-exactness.
    """
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(path, framework="pt", device="cpu") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensor = handle.get_tensor(key)
            tensors[key] = torch.empty_like(tensor, device=device).copy_(tensor)
    return tensors


def materialise_buffers(model: nn.Module, device: torch.device) -> None:
    """Non-persistent buffers (rotary ``inv_freq``) are not in checkpoints: rebuild their modules from config."""
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if any(buffer.is_meta for buffer in child.buffers(recurse=False)):
                if not hasattr(child, "config") or any(True for _ in child.parameters(recurse=False)):
                    raise ArtefactError(
                        f"cannot rebuild buffers of {parent_name}.{child_name} ({type(child).__name__}) "
                        "after a language-only load; this model family needs adapter support."
                    )
                with torch.device(device):
                    setattr(parent, child_name, type(child)(child.config))


class SplitPath(PathRunner):
    name = "split"
    description = "vision and LM saved apart (safetensors) and reloaded apart"

    def __init__(self, context: PathContext, artefact_dir: Path | None = None) -> None:
        super().__init__(context)
        self.artefact_dir = artefact_dir or split_cache_dir(context)
        self.attn_implementation = "sdpa"
        self.vision: nn.Module | None = None
        self.language: nn.Module | None = None
        self.processor: Any = None

    def _prepare(self) -> None:
        from transformers import AutoImageProcessor, AutoProcessor

        manifest = self._split_manifest()
        self.attn_implementation = manifest.get("attn_implementation") or "sdpa"
        self._load_language()
        trust = self.context.trust_remote_code
        self.processor = AutoProcessor.from_pretrained(
            self.artefact_dir / "language",
            image_processor=AutoImageProcessor.from_pretrained(self.artefact_dir / "vision", trust_remote_code=trust),
            trust_remote_code=trust,
        )
        self._load_vision()

    def _split_manifest(self) -> dict[str, Any]:
        """Build the split artefact if it is not cached, verify it against its manifest and return the manifest."""
        if not self.artefact_dir.exists():
            with self.timer.stage("build"), progress.stage("writing the split artefact"):
                model, processor = load_original(self.context)
                write_split(model, processor, self.context.adapter, self.context.source, self.artefact_dir)
                del model
        manifest = verify_manifest(self.artefact_dir, SPLIT_KIND)
        check_source(manifest, self.context, self.artefact_dir)
        return manifest

    def _load_language(self) -> None:
        """Load the language model this path generates with (here: the split's safetensors LM, vision-free)."""
        self.language = load_language_model(
            self.context.adapter, self.artefact_dir / "language", self.context, self.attn_implementation
        )

    def _load_vision(self) -> None:
        """Load whatever encodes images for this path (here: the split's torch vision tower)."""
        self.vision = load_vision_tower(
            self.context.adapter, self.artefact_dir / "vision", self.context, self.attn_implementation
        )

    def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures[torch.Tensor]:
        return self.context.adapter.encode_images(self.vision, pixel_values, grid_thw)

    @property
    def language_model(self) -> nn.Module:
        return self.language

    def vision_block_outputs(self, sample: Sample) -> list[np.ndarray]:
        """Every vision block's output for ``sample`` (all images), to locate where a divergence starts."""
        inputs = self.preprocess(sample)
        return self._block_outputs(inputs["pixel_values"], inputs["image_grid_thw"])

    @torch.inference_mode()
    def _block_outputs(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[np.ndarray]:
        return capture_block_outputs(self.vision, lambda: self._encode(pixel_values, grid_thw))

    def artefact_bytes(self) -> int | None:
        return sum(path.stat().st_size for path in self.artefact_dir.rglob("*") if path.is_file())
