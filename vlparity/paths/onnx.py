"""``onnx``, ``onnx-fp16``, ``onnx-int8``, ``onnx-bf16``, ``onnx-qdq``: the vision encoder exported to ONNX and run by
ONNX Runtime, feeding the ``split`` language model. Each precision is its own path so parity and perf see them apart."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vlparity import progress
from vlparity.errors import ArtefactError
from vlparity.export.onnx_vision import (
    MODEL_NAME,
    ExportSettings,
    Precision,
    check_fixed_shape,
    convert_precision,
    export_fp32,
    split_embeddings,
    stamp_metadata,
    validate,
)
from vlparity.export.qdq import calibration_images, check_qdq_config, quantize_qdq
from vlparity.hashing import digest_of
from vlparity.inputs import Sample
from vlparity.manifest import verify_manifest, write_artefact
from vlparity.paths.base import PathContext, check_source
from vlparity.paths.original import load_source_model
from vlparity.paths.split import SplitPath
from vlparity.runtime.ort import AuditedSession, OrtOptions
from vlparity.static_shape import StaticShape
from vlparity.vision_features import DEEPSTACK_PREFIX, EMBEDDINGS, VisionFeatures

log = logging.getLogger(__name__)
ONNX_KIND = "onnx-vision"
STANDARD_DOMAINS = ("", "ai.onnx")  # the operator sets onnx.reference implements


class ThirdOpinionUnavailableError(Exception):
    """``onnx.reference`` cannot run this graph: the third opinion is not applicable (not a fault of the model)."""


# Traced example: two images of different sizes, so every segment dimension is seen as dynamic (size > 1). In merged
# tokens (rows, columns): multiplied by the merge size, as the processor's grids always are.
EXAMPLE_MERGED_GRID = [[1, 8, 10], [1, 6, 14]]
GraphRun = Callable[[dict[str, np.ndarray], list[str]], list[np.ndarray]]  # (feeds, output names) → outputs


def onnx_cache_dir(context: PathContext, settings: ExportSettings) -> Path:
    """Keyed by source weights, export settings (static shape and opset included) and library versions: a changed
    weight means a new export, and a fixed-shape export never shares a directory with the dynamic one."""
    key = digest_of({"source": context.source.content_hash(), "export": settings.key()})
    shape = f"-{settings.static_shape}-opset{settings.opset}" if settings.static_shape else ""
    variant = f"qdq-{settings.qdq_config}" if settings.precision == "qdq" else settings.precision
    return context.cache_dir / "onnx" / f"{variant}-{settings.attention}{shape}-{key[:16]}"


def _example_inputs(vision_config: Any, static_shape: StaticShape | None) -> dict[str, torch.Tensor]:
    """Traced example: ``EXAMPLE_MERGED_GRID`` for the dynamic export, one image of ``static_shape`` for a fixed one."""
    merge = vision_config.spatial_merge_size
    if static_shape is None:
        grid = torch.tensor([[t, rows * merge, cols * merge] for t, rows, cols in EXAMPLE_MERGED_GRID])
    else:
        grid = torch.tensor([static_shape.grid_thw(vision_config.patch_size)])
    width = vision_config.in_channels * vision_config.temporal_patch_size * vision_config.patch_size**2
    generator = torch.Generator().manual_seed(0)
    return {"pixel_values": torch.randn(int(grid.prod(-1).sum()), width, generator=generator), "image_grid_thw": grid}


def calibration_feeds(context: PathContext, static_shape: StaticShape | None) -> list[dict[str, np.ndarray]]:
    """One feed per calibration image (``export.qdq.calibration_images``), each at the size the processor gives it (a
    fixed-shape export: resized to ``static_shape`` first), so the ranges cover the sizes the graph will see."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(
        context.source.directory, trust_remote_code=context.trust_remote_code
    )
    vision_config = context.source_config().vision_config
    feeds = []
    for image in calibration_images():
        inputs = processor(images=[static_shape.resize(image) if static_shape else image], return_tensors="pt")
        indices = context.adapter.export_inputs(inputs["image_grid_thw"], vision_config)
        feeds.append({"pixel_values": inputs["pixel_values"].float().numpy(), **indices})
    return feeds


def build_onnx_vision(context: PathContext, settings: ExportSettings) -> Path:
    """Return the artefact directory for ``settings``, exporting (and converting) first if it is not cached."""
    target = onnx_cache_dir(context, settings)
    if (target / "manifest.json").is_file():
        return target
    metadata = {
        "source_model": context.source.reference,
        "source_sha256": context.source.content_hash(),
        "model_type": context.source.model_type,
        "precision": settings.precision,
        "opset": settings.opset,
        "attention": settings.attention,
        **({"static_shape": str(settings.static_shape)} if settings.static_shape else {}),
        **({"qdq_config": settings.qdq_config} if settings.precision == "qdq" else {}),
        **({"qdq_exclude": json.dumps(list(settings.qdq_exclude))} if settings.precision == "qdq" else {}),
        "versions": settings.key(),
    }

    def build(tmp: Path) -> dict[str, Any]:
        model_path = tmp / MODEL_NAME
        if settings.precision == "fp32":
            model = load_source_model(context, torch.float32)
            vision = context.adapter.vision_tower(model).eval()
            example = _example_inputs(vision.config, settings.static_shape)
            with progress.stage("exporting the vision encoder to ONNX"):
                export_fp32(
                    vision, context.adapter, example, model_path, settings.opset, settings.attention,
                    dynamic=settings.static_shape is None,
                )  # fmt: skip
            del model
        elif settings.precision == "qdq":
            check_qdq_config(settings.qdq_config, settings.static_shape is not None)
            fp32_dir = build_onnx_vision(context, dataclasses.replace(settings, precision="fp32"))
            with progress.stage(f"quantizing the ONNX vision encoder to static QDQ ({settings.qdq_config})"):
                metadata["quantizer"] = quantize_qdq(
                    fp32_dir / MODEL_NAME, model_path, calibration_feeds(context, settings.static_shape),
                    settings.qdq_config, nodes_to_exclude=settings.qdq_exclude,
                )  # fmt: skip
        else:
            fp32_dir = build_onnx_vision(context, dataclasses.replace(settings, precision="fp32"))
            log.info("converting the ONNX vision model to %s…", settings.precision)
            with progress.stage(f"converting the ONNX vision encoder to {settings.precision}"):
                convert_precision(fp32_dir / MODEL_NAME, model_path, settings.precision)
        validated = validate(model_path)
        if settings.static_shape:
            check_fixed_shape(model_path, validated, settings.opset)
        stamp_metadata(model_path, {key: str(value) for key, value in metadata.items()})
        return metadata

    return write_artefact(target, ONNX_KIND, build)


class OnnxPath(SplitPath):
    name: ClassVar[str] = "onnx"
    description: ClassVar[str] = "ONNX Runtime vision (fp32) + split safetensors LM"
    precision: ClassVar[Precision] = "fp32"
    derived_from_fp32: ClassVar[bool] = False  # rewritten from the fp32 export keeping its tensor names

    def __init__(self, context: PathContext, onnx_dir: Path | None = None) -> None:
        super().__init__(context)
        self.onnx_dir = onnx_dir
        self.model_path: Path | None = None
        self.session: AuditedSession | None = None

    @property
    def ort_options(self) -> OrtOptions:
        return self.context.ort

    def _load_vision(self) -> None:
        self.model_path = self._vision_model()
        self.session = AuditedSession(self.model_path, self.ort_options)
        self.vision = None

    def _vision_model(self) -> Path:
        """Export the vision encoder if it is not cached, verify it against its manifest, return the .onnx file."""
        if self.onnx_dir is None:
            settings = ExportSettings(
                self.precision, static_shape=self.context.static_shape, qdq_config=self.context.qdq_config,
                qdq_exclude=self.context.qdq_exclude,
            )  # fmt: skip
            with self.timer.stage("export"):
                self.onnx_dir = build_onnx_vision(self.context, settings)
        check_source(verify_manifest(self.onnx_dir, ONNX_KIND), self.context, self.onnx_dir)
        return self.onnx_dir / MODEL_NAME

    def feeds(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> dict[str, np.ndarray]:
        vision_config = self.language.config.vision_config
        indices = self.context.adapter.export_inputs(grid_thw, vision_config)
        return {"pixel_values": pixel_values.detach().float().cpu().numpy(), **indices}

    def _run_graph(
        self, run: GraphRun, pixel_values: torch.Tensor, grid_thw: torch.Tensor, outputs: list[str]
    ) -> list[np.ndarray]:
        """``outputs`` for every image of the processor's outputs: one run for all of them, or, for a fixed-shape graph
        (it takes exactly one image of its size), one run per image with the outputs concatenated along the token
        axis. Images do not attend to each other, so both give the same tokens in the same order."""
        per_run = [run(feeds, outputs) for feeds in self._feeds_per_run(pixel_values, grid_thw)]
        return per_run[0] if len(per_run) == 1 else [np.concatenate(parts) for parts in zip(*per_run, strict=True)]

    def _feeds_per_run(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[dict[str, np.ndarray]]:
        """One feed for all images, or one per image for a fixed-shape graph."""
        if not self.session.fixed_shape:
            return [self.feeds(pixel_values, grid_thw)]
        patches = grid_thw.prod(-1).tolist()
        return [
            self.feeds(pixels, grid[None]) for pixels, grid in zip(pixel_values.split(patches), grid_thw, strict=True)
        ]

    def graph_feeds(self, sample: Sample) -> list[dict[str, np.ndarray]]:
        """The feeds of every run of the vision graph for ``sample`` (for the per-tensor error table)."""
        inputs = self.preprocess(sample)
        return self._feeds_per_run(inputs["pixel_values"], inputs["image_grid_thw"])

    def float_twin(self) -> Path | None:
        """The fp32 export this graph was derived from tensor by tensor (onnx-bf16, onnx-qdq: the per-tensor error
        table compares the two); None for a graph that is not (onnx itself; onnx-fp16 and onnx-int8, whose converters
        rename what they rewrite)."""
        if not self.derived_from_fp32:
            return None
        fp32 = ExportSettings("fp32", static_shape=self.context.static_shape)
        return build_onnx_vision(self.context, fp32) / MODEL_NAME

    @property
    def feature_outputs(self) -> list[str]:
        """The graph outputs the LM takes: ``image_embeds`` and any ``deepstack_<level>``."""
        return [EMBEDDINGS, *sorted(n for n in self.session.output_names if n.startswith(DEEPSTACK_PREFIX))]

    def _features(self, outputs: list[np.ndarray], grid_thw: torch.Tensor) -> VisionFeatures[np.ndarray]:
        """Graph outputs (``feature_outputs`` order, all images concatenated) split per image."""
        merge = self.language.config.vision_config.spatial_merge_size
        grid = grid_thw.cpu().numpy()
        named = dict(zip(self.feature_outputs, outputs, strict=True))
        return VisionFeatures.from_named({name: split_embeddings(array, grid, merge) for name, array in named.items()})

    def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures[torch.Tensor]:
        outputs = self._run_graph(self.session.run, pixel_values, grid_thw, self.feature_outputs)
        device, dtype = self.context.device, self.context.dtype
        return self._features(outputs, grid_thw).map(lambda chunk: torch.from_numpy(chunk).to(device, dtype))

    def _block_outputs(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[np.ndarray]:
        """Each vision block's output as computed inside the ONNX graph (exposed as ``block_<i>`` outputs)."""
        names = sorted((n for n in self.session.output_names if n.startswith("block_")), key=lambda n: int(n[6:]))
        return self._run_graph(self.session.run, pixel_values, grid_thw, names)

    def reference_evaluator_embeddings(self, sample: Sample) -> VisionFeatures[np.ndarray]:
        """Third opinion: the same ONNX file run by ``onnx.reference`` (slow; meant for small inputs). Raises
        ``ThirdOpinionUnavailableError`` for a graph it cannot run, e.g. one ORT's offline optimization wrote, whose
        contrib ops (``com.microsoft.FusedMatMul`` …) only ONNX Runtime implements."""
        import onnx
        from onnx.reference import ReferenceEvaluator

        graph = onnx.load(str(self.model_path), load_external_data=False).graph
        contrib = sorted(
            {f"{node.domain}.{node.op_type}" for node in graph.node if node.domain not in STANDARD_DOMAINS}
        )
        if contrib:
            raise ThirdOpinionUnavailableError(f"contrib ops: {', '.join(contrib)}")
        inputs = self.preprocess(sample)
        try:
            evaluator = ReferenceEvaluator(str(self.model_path))
        except (NotImplementedError, RuntimeError) as exc:  # RuntimeError: no kernel for an op version (QDQ graphs)
            raise ThirdOpinionUnavailableError(f"onnx.reference cannot load the graph: {exc}") from exc
        try:
            outputs = self._run_graph(
                lambda feeds, outputs: evaluator.run(outputs, feeds),
                inputs["pixel_values"], inputs["image_grid_thw"], self.feature_outputs,
            )  # fmt: skip
        except NotImplementedError as exc:
            raise ThirdOpinionUnavailableError(f"onnx.reference lacks an operator: {exc}") from exc
        return self._features(outputs, inputs["image_grid_thw"]).map(lambda chunk: np.asarray(chunk, np.float32))

    def describe(self) -> dict[str, Any]:
        audit = self.session.audit.as_dict() if self.session and self.session.audit else None
        stamped = self.session.metadata if self.session else {}
        opset = {"opset": int(stamped["opset"])} if "opset" in stamped else {}
        quantizer = {key: stamped[key] for key in ("quantizer", "qdq_config") if key in stamped}
        if "qdq_exclude" in stamped:  # the nodes kept in float (--qdq-exclude), as a list
            quantizer["qdq_exclude"] = json.loads(stamped["qdq_exclude"])
        return {**super().describe(), "onnx_dir": str(self.onnx_dir), **opset, **quantizer, "provider_audit": audit}

    def artefact_bytes(self) -> int | None:
        if self.onnx_dir is None:
            raise ArtefactError("the ONNX path has not been prepared")
        return sum(path.stat().st_size for path in self.onnx_dir.rglob("*") if path.is_file())


class OnnxFp16Path(OnnxPath):
    name = "onnx-fp16"
    description = "ONNX Runtime vision (fp16 weights/compute, fp32 I/O) + split safetensors LM"
    precision = "fp16"


class OnnxInt8Path(OnnxPath):
    name = "onnx-int8"
    description = "ONNX Runtime vision (dynamic int8 quantization) + split safetensors LM"
    precision = "int8"


class OnnxBf16Path(OnnxPath):
    name = "onnx-bf16"
    description = "ONNX Runtime vision (BF16 as the NPU computes it, simulated in fp32 kernels) + split safetensors LM"
    precision = "bf16"
    derived_from_fp32 = True


class OnnxQdqPath(OnnxPath):
    name = "onnx-qdq"
    description = "ONNX Runtime vision (static QDQ int8, calibrated on images: AMD Quark or ORT) + split safetensors LM"
    precision = "qdq"
    derived_from_fp32 = True
