"""The one interface every path implements, plus stage timing. Paths run models; they never judge results."""

from __future__ import annotations

import resource
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vlparity.adapters import FamilyAdapter, adapter_for
from vlparity.errors import ArtefactError
from vlparity.export.qdq import DEFAULT_QDQ_CONFIG, QdqConfig
from vlparity.inputs import Sample, preprocess
from vlparity.model_source import ModelSource
from vlparity.paths.language import Generation, greedy_generate, teacher_forced_logits
from vlparity.runtime.ort import OrtOptions
from vlparity.static_shape import StaticShape
from vlparity.vision_features import VisionFeatures, feature_arrays


@dataclass
class StageRecord:
    seconds: float
    peak_rss_bytes: int
    cuda_peak_bytes: int | None


@dataclass
class StageTimer:
    """Wall time and memory per named stage (``load``, ``preprocess``, ``vision_encode``, ``generate`` …)."""

    device: torch.device
    records: dict[str, list[StageRecord]] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        yield
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.records.setdefault(name, []).append(
            StageRecord(
                seconds=seconds,
                # ru_maxrss is the process high-water mark in KiB on Linux: an upper bound for this stage.
                peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                cuda_peak_bytes=torch.cuda.max_memory_allocated(self.device) if cuda else None,
            )
        )


@dataclass(frozen=True)
class PathContext:
    """What every path of one run shares: the source model, device, dtype and where artefacts are cached."""

    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    cache_dir: Path
    ort: OrtOptions = field(default_factory=OrtOptions)
    device_map: str | None = None  # e.g. "auto": accelerate places the LM over every visible device
    trust_remote_code: bool = False  # passed to every from_pretrained: a checkpoint's own code runs only when asked
    static_shape: StaticShape | None = None  # --static-shape: every image resized to it, onnx* exported for it only
    qdq_config: QdqConfig = DEFAULT_QDQ_CONFIG  # --qdq-config: onnx-qdq's quantization scheme
    qdq_exclude: tuple[str, ...] = ()  # --qdq-exclude: onnx-qdq's nodes kept in float

    @cached_property
    def adapter(self) -> FamilyAdapter:
        return adapter_for(self.source.model_type, f"--model {self.source.reference}")

    def source_config(self) -> Any:
        """The source model's transformers config."""
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.source.directory, trust_remote_code=self.trust_remote_code)

    def skeleton(self) -> nn.Module:
        """The source architecture on the meta device: parameter names and shapes without allocating weights."""
        with torch.device("meta"):
            return self.adapter.model_class(self.source_config())


class PathRunner(ABC):
    """A way of running the model. ``prepare`` builds or loads artefacts lazily; the rest are pure queries."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, context: PathContext) -> None:
        self.context = context
        self.timer = StageTimer(context.device)
        self._prepared = False

    def prepare(self) -> None:
        """Build or load everything the path needs; idempotent."""
        if not self._prepared:
            with self.timer.stage("load"):
                self._prepare()
            self._prepared = True

    @abstractmethod
    def _prepare(self) -> None: ...

    # Stages, each timed on its own by the benchmarks; encode_images / generate / score compose them.
    processor: Any = None  # the HF processor, set by _prepare

    def preprocess(self, sample: Sample) -> dict[str, Any]:
        """Processor outputs for ``sample``, on the run's device."""
        self.prepare()
        with self.timer.stage("preprocess"):
            return to_device(preprocess(self.processor, sample, self.context.static_shape), self.context.device)

    @torch.inference_mode()
    def vision_encode(self, inputs: dict[str, Any]) -> VisionFeatures[torch.Tensor]:
        """What the vision encoder gives the LM for every image of ``preprocess``'s outputs: one ``[tokens, hidden]``
        embedding tensor per image (and the DeepStack features, for a family that has them)."""
        if "pixel_values" not in inputs:
            return VisionFeatures()
        with self.timer.stage("vision_encode"):
            return self._encode(inputs["pixel_values"], inputs["image_grid_thw"])

    @abstractmethod
    def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures[torch.Tensor]:
        """This path's vision encoder on preprocessed pixels."""

    def language_inputs(self, sample: Sample) -> dict[str, Any]:
        """What ``language_model`` takes for ``sample``: token ids plus this path's own image embeddings."""
        inputs = self.preprocess(sample)
        return language_inputs_with(self.context.adapter, inputs, self.vision_encode(inputs))

    def model_inputs(self, sample: Sample) -> dict[str, Any]:
        """What ``generate`` and ``score`` feed ``language_model`` (callers that run both compute it once per sample,
        so the vision encoder is not re-run for each)."""
        return self.language_inputs(sample)

    def model_inputs_with(self, inputs: dict[str, Any], features: VisionFeatures[torch.Tensor]) -> dict[str, Any]:
        """``model_inputs`` from ``preprocess``'s outputs and this path's ``vision_encode`` of them (already run)."""
        return language_inputs_with(self.context.adapter, inputs, features)

    @property
    @abstractmethod
    def language_model(self) -> nn.Module:
        """The model that generates (its own vision tower, if any, is skipped given ``language_inputs``)."""

    def encode_images(self, sample: Sample) -> VisionFeatures[np.ndarray]:
        """The vision features as fed to the LM, as float32 ``[tokens, hidden]`` arrays per image."""
        return feature_arrays(self.vision_encode(self.preprocess(sample)))

    def generate(self, sample: Sample, max_new_tokens: int, inputs: dict[str, Any] | None = None) -> Generation:
        """Greedy decoding of the sample's prompt (``inputs``: its ``model_inputs``, if already computed)."""
        inputs = self.model_inputs(sample) if inputs is None else inputs
        with self.timer.stage("generate"):
            return greedy_generate(self.language_model, inputs, max_new_tokens)

    def score(self, sample: Sample, tokens: np.ndarray, inputs: dict[str, Any] | None = None) -> np.ndarray:
        """Teacher-forced logits ``[len(tokens), vocab]``: row i predicts ``tokens[i]`` from prompt + ``tokens[:i]``."""
        inputs = self.model_inputs(sample) if inputs is None else inputs
        with self.timer.stage("teacher_forced"):
            return teacher_forced_logits(self.language_model, inputs, tokens)

    def generation_config(self) -> tuple[dict[str, Any], Path]:
        """The generation config a deployment of this path's LM reads, and the file it comes from: the directory the
        LM was loaded from (the source model, the split's ``language/``, the AWQ checkpoint)."""
        model = self.language_model
        return model.generation_config.to_dict(), Path(model.config.name_or_path) / "generation_config.json"

    def artefact_bytes(self) -> int | None:
        """Bytes on disk of what this path built (None when it reuses the source checkpoint)."""
        return None

    def describe(self) -> dict[str, Any]:
        static = {"static_shape": str(self.context.static_shape)} if self.context.static_shape else {}
        return {"description": self.description, **static}


def language_inputs_with(
    adapter: FamilyAdapter, inputs: dict[str, Any], features: VisionFeatures[torch.Tensor]
) -> dict[str, Any]:
    """The processor outputs with the pixels replaced by precomputed vision features (the LM then skips vision)."""
    result = {key: value for key, value in inputs.items() if key != "pixel_values"}
    if features.images:
        result["mm_encoder_outputs"] = adapter.encoder_outputs(features)
    return result


ALIGNMENT = 64  # bytes: what CPU GEMM kernels want of an operand to take their aligned code path


def realign_parameters(model: nn.Module) -> nn.Module:
    """Copy every CPU parameter that sits at an unaligned address into a fresh allocation, in place.

    ``from_pretrained`` maps safetensors at the file's offsets; CPU GEMM kernels take other code paths for unaligned
    operands, so the last bit of a matmul then depends on where a tensor happened to sit in its file (measured: a tied
    lm_head at offset 24 gave logits 9.5e-8 (rel L2) off the same weights in a fresh allocation). Every path loads
    its torch weights aligned, so that paths meant to be bit-exact are compared on equal terms. A tied parameter is
    one object and is copied once."""
    for parameter in model.parameters():  # deduplicated: a tied weight appears once
        if parameter.device.type == "cpu" and parameter.data_ptr() % ALIGNMENT:
            parameter.data = torch.empty_like(parameter.data).copy_(parameter.data)
    return model


def to_device(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in inputs.items()}


def capture_block_outputs(vision: nn.Module, run: Any) -> list[np.ndarray]:
    """Run ``run()`` with forward hooks on every block of ``vision``; return each block's output as float32."""
    captured: list[np.ndarray] = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().float().cpu().numpy()))
        for block in vision.blocks
    ]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return captured


@torch.inference_mode()
def capture_decoder_states(model: nn.Module, inputs: dict[str, Any]) -> list[np.ndarray]:
    """One forward of ``model`` on ``inputs``: its input embeddings, each decoder layer's output and the last
    position's logits, as float32 (the states ``parity.layers.compare_layers`` takes)."""
    output = model(**inputs, output_hidden_states=True, use_cache=False, logits_to_keep=1)
    states = [state[0].detach().float().cpu().numpy() for state in output.hidden_states]
    return [*states, output.logits[0].detach().float().cpu().numpy()]


def check_source(manifest: dict[str, Any], context: PathContext, artefact_dir: Path) -> None:
    """Refuse an artefact built from other weights than the model being judged (a stale export reused after a weight
    changed): its manifest records the source checkpoint's sha256."""
    recorded, actual = manifest.get("source_sha256"), context.source.content_hash()
    if recorded is not None and recorded != actual:
        raise ArtefactError(
            f"{artefact_dir}: stale artefact, built from a source with sha256 {recorded} but the model being judged "
            f"({context.source.reference}) has sha256 {actual}. A weight changed since it was built; delete it and "
            "let vlparity rebuild it."
        )
