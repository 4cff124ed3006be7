"""``awq`` (torch vision + AWQ int4 LM) and ``awq+onnx`` (ONNX Runtime vision + AWQ int4 LM, the edge deployment).

Besides the usual checks against ``original`` these paths expose a *dequantized twin*: a float32 model rebuilt from the
AWQ checkpoint's own unpacked weights. AWQ vs twin isolates kernel, packing and loading errors (tight); twin vs
original is the quantization error itself (judged with distribution metrics, not exact tokens).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vlparity import progress
from vlparity.hashing import digest_of
from vlparity.manifest import library_versions, verify_manifest, write_artefact
from vlparity.parity.weights import LAYERS, LinearError, linear_weight_errors
from vlparity.paths.base import PathContext, check_source
from vlparity.paths.language import teacher_forced_logits
from vlparity.paths.onnx import OnnxPath
from vlparity.paths.original import load_source_model
from vlparity.paths.split import SplitPath, load_tied_state_dict, materialise_buffers
from vlparity.quantize.awq import AwqSettings, check_quantizable, dequantized_state_dict, load_awq, quantize_to
from vlparity.quantize.awq_compat import autoawq_version

AWQ_KIND = "awq"
AWQ_DTYPE = torch.float16  # the dtype gptqmodel's AWQ kernels run in, on CPU and CUDA
# What build_awq writes, versioned: part of the cache key, so bumping it rebuilds every cached checkpoint instead of
# reusing one written by older code. 2: the source's generation_config.json (layout 1 had AutoAWQ's do_sample=true).
AWQ_LAYOUT = 2


def awq_cache_dir(context: PathContext, settings: AwqSettings) -> Path:
    key = digest_of(
        {
            "source": context.source.content_hash(),
            "layout": AWQ_LAYOUT,
            "settings": {
                **settings.quant_config(),
                "calibration": digest_of(settings.calibration_file.read_text()),
                "apply_clip": settings.apply_clip,
            },
            "versions": {**library_versions(), "autoawq": autoawq_version()},
        }
    )
    return context.cache_dir / "awq" / f"g{settings.group_size}-{key[:16]}"


def build_awq(context: PathContext, settings: AwqSettings) -> Path:
    """Quantize the source model's LM (cached by content hash) and return the checkpoint directory. Dimensions the
    group size does not divide are refused first, on the meta-device skeleton (no weights read, nothing written)."""
    check_quantizable(context.skeleton(), settings.group_size, settings.apply_clip)
    target = awq_cache_dir(context, settings)
    if (target / "manifest.json").is_file():
        return target

    def build(tmp: Path) -> dict[str, Any]:
        from transformers import AutoProcessor

        model = load_source_model(context, torch.float32)
        processor = AutoProcessor.from_pretrained(context.source.directory, trust_remote_code=context.trust_remote_code)
        with progress.stage(f"AWQ: calibrating and quantizing the language model (group size {settings.group_size})"):
            quantize_to(model, processor, context.source.model_type, settings, tmp, context.source.directory)
        return {
            "source_model": context.source.reference,
            "source_sha256": context.source.content_hash(),
            "quant_config": settings.quant_config(),
        }

    return write_artefact(target, AWQ_KIND, build)


def _layer_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The decoder layers' float32 weights of ``model`` as arrays (views on the CPU)."""
    state = model.state_dict()
    return {key: value.detach().float().cpu().numpy() for key, value in state.items() if key.startswith(LAYERS)}


class AwqLanguage:
    """Mixin for paths whose language model is the AWQ checkpoint."""

    context: PathContext
    awq_settings = AwqSettings()
    awq_dir: Path | None = None  # set to judge an existing AWQ checkpoint instead of building one
    # None: the whole LM runs in AWQ_DTYPE (what the tolerances were measured with). bfloat16: a float32 LM whose
    # int4 GEMMs take bf16 activations, the fast CPU kernel (benchmarked; its kernel error is ~10x fp16's).
    gemm_activations: torch.dtype | None = None
    _weight_errors: list[LinearError] | None = None

    def _load_language(self) -> None:
        self._awq_checkpoint()
        self.language = load_awq(
            self.awq_dir, self.context.device, AWQ_DTYPE if self.gemm_activations is None else torch.float32,
            device_map=self.context.device_map, trust_remote_code=self.context.trust_remote_code,
            gemm_activations=self.gemm_activations,
        )  # fmt: skip

    def _awq_checkpoint(self) -> None:
        """Quantize the LM if it is not cached (sets ``awq_dir``) and verify the checkpoint against its manifest."""
        if self.awq_dir is None:
            with self.timer.stage("quantize"):
                self.awq_dir = build_awq(self.context, self.awq_settings)
        check_source(verify_manifest(self.awq_dir, AWQ_KIND), self.context, self.awq_dir)

    @cached_property
    def dequantized_twin(self) -> nn.Module:
        """float32 model of the source architecture with the AWQ checkpoint's weights unpacked."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.awq_dir, trust_remote_code=self.context.trust_remote_code)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.device("meta"):
            twin = self.context.adapter.model_class(config)
        state = dequantized_state_dict(self.awq_dir, self.awq_settings.group_size)
        load_tied_state_dict(twin, {k: v.to(self.context.device) for k, v in state.items()}, self.awq_dir)
        materialise_buffers(twin, self.context.device)
        return twin.eval()

    def weight_errors(self, reference: nn.Module) -> list[LinearError]:
        """Every decoder linear of the dequantized twin against ``reference``'s (the float source model), AWQ's scale
        folds undone (``vlparity.parity.weights``); computed once per path."""
        if self._weight_errors is None:
            layers = self.context.source_config().get_text_config().num_hidden_layers
            self._weight_errors = linear_weight_errors(
                _layer_arrays(reference), _layer_arrays(self.dequantized_twin), layers
            )
        return self._weight_errors

    def twin_score(self, inputs: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
        """Teacher-forced logits of the dequantized twin on the same ``model_inputs`` (this path's own image
        embeddings) as ``score``."""
        with self.timer.stage("twin"):
            return teacher_forced_logits(self.dequantized_twin, inputs, tokens)

    def artefact_bytes(self) -> int | None:
        return sum(path.stat().st_size for path in self.awq_dir.rglob("*.safetensors"))


class AwqPath(AwqLanguage, SplitPath):
    name = "awq"
    description = "torch vision (split) + AWQ int4 LM (AutoAWQ, loaded through transformers/gptqmodel)"


class AwqOnnxPath(AwqLanguage, OnnxPath):
    name = "awq+onnx"
    description = "ONNX Runtime vision (fp32) + AWQ int4 LM: the edge deployment"

    def artefact_bytes(self) -> int | None:
        """Both things this path built: the AWQ checkpoint and the ONNX vision export."""
        return AwqLanguage.artefact_bytes(self) + OnnxPath.artefact_bytes(self)
