"""Export a family's vision tower to ONNX (one model for every image size, or a fixed-shape one for a single size),
validate it, and derive fp16/int8.

Artefact layout (one directory per variant, written atomically with a manifest)::

    vision.onnx            graph (+ vision.onnx.data when the weights exceed EXTERNAL_DATA_BYTES)
    manifest.json          sha256 of every file, source model hash, versions, opset, input contract

Inputs: ``pixel_values`` plus the family adapter's index inputs (``export_inputs``); outputs: ``image_embeds``
(what the LM consumes, all images concatenated) and ``block_<i>`` (each vision block's output, for diagnosis).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from vlparity.adapters import FamilyAdapter
from vlparity.errors import ArtefactError
from vlparity.export.qdq import DEFAULT_QDQ_CONFIG, QdqConfig, normalise_node_names
from vlparity.manifest import library_versions
from vlparity.static_shape import StaticShape

log = logging.getLogger(__name__)

OPSET = 18  # pinned: every ORT build we target (CPU, CUDA, VitisAI) implements opset 18
STATIC_OPSET = 17  # fixed-shape exports: the opset AMD recommends for the Ryzen AI NPU flow (VitisAI EP)
MODEL_NAME = "vision.onnx"
EXTERNAL_DATA_BYTES = 1 << 30  # protobuf caps a model at 2 GiB; keep headroom
Precision = Literal["fp32", "fp16", "int8", "bf16", "qdq"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8", "bf16", "qdq")


@dataclass(frozen=True)
class ExportSettings:
    precision: Precision = "fp32"
    attention: str = "segments"  # or "mask": see export.vision_graph.SegmentAttention
    static_shape: StaticShape | None = None  # one image of this size, no dynamic axes (--static-shape)
    qdq_config: QdqConfig = DEFAULT_QDQ_CONFIG  # precision "qdq" only: --qdq-config
    qdq_exclude: tuple[str, ...] = ()  # precision "qdq" only: --qdq-exclude, nodes kept in float (sorted, unique)

    def __post_init__(self) -> None:  # exclusions mean nothing to another precision: its fp32 source shares the cache
        excluded = normalise_node_names(self.qdq_exclude) if self.precision == "qdq" else ()
        object.__setattr__(self, "qdq_exclude", excluded)

    @property
    def opset(self) -> int:
        """Follows the shape: a fixed-shape export is for the NPU flow, which takes opset 17 (docs/npu.md)."""
        return STATIC_OPSET if self.static_shape else OPSET

    def key(self) -> dict[str, Any]:
        import onnx
        import onnxruntime
        import onnxscript

        return {
            "precision": self.precision,
            "opset": self.opset,
            "attention": self.attention,
            "static_shape": str(self.static_shape) if self.static_shape else "dynamic",
            "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__,
            "onnxruntime": onnxruntime.__version__,
            "graph_code": graph_code_digest(),
            **variant_code_digest(self.precision),
            **(self.qdq_key() if self.precision == "qdq" else {}),
            **library_versions(),
        }

    def qdq_key(self) -> dict[str, Any]:
        """What else a QDQ artefact depends on: its configuration, the nodes kept in float, the quantizer that runs,
        the calibration images."""
        from vlparity.export.qdq import calibration_digest, calibration_images, quantizer_name

        return {
            "qdq_config": self.qdq_config,
            "qdq_exclude": list(self.qdq_exclude),
            "quantizer": quantizer_name(),
            "calibration": calibration_digest(calibration_images()),
        }


def graph_code_digest() -> str:
    """sha256 of the code that shapes the exported graph: an edit to it must not reuse a stale cached export."""
    from vlparity import adapters
    from vlparity.export import vision_graph

    sources = [Path(vision_graph.__file__), Path(__file__), *sorted(Path(adapters.__file__).parent.glob("*.py"))]
    return hashlib.sha256(b"".join(source.read_bytes() for source in sources)).hexdigest()


# Precisions derived by a module of their own: its code is part of their key only (editing it keeps the others cached).
VARIANT_MODULES = {"bf16": "bf16", "qdq": "qdq"}


def variant_code_digest(precision: Precision) -> dict[str, str]:
    """``{"variant_code": sha256}`` of the module that derives ``precision`` from the fp32 export, if it has one."""
    if precision not in VARIANT_MODULES:
        return {}
    source = Path(__file__).with_name(f"{VARIANT_MODULES[precision]}.py")
    return {"variant_code": hashlib.sha256(source.read_bytes()).hexdigest()}


def _dynamic_shapes(input_names: list[str], merge_size: int) -> dict[str, dict[int, Any]]:
    """Every size-dependent dimension is dynamic: patches (merge_size²·groups: each merged token is one group of
    merge_size × merge_size patches), segments and their lengths."""
    from torch.export import Dim

    groups = Dim("groups", min=1)
    tokens = merge_size**2 * groups
    spec = {
        "pixel_values": {0: tokens},
        "position_ids": {0: tokens},
        "full_gather": {0: Dim("segments", min=1), 1: Dim("segment_length", min=1)},
        "full_scatter": {0: tokens},
        "window_gather": {0: Dim("windows", min=1), 1: Dim("window_length", min=1)},
        "window_scatter": {0: tokens},
        "window_index": {0: groups},
        "reverse_index": {0: groups},
        "interp_indices": {0: tokens},
        "interp_weights": {0: tokens},
    }
    spec["full_valid"], spec["window_valid"] = spec["full_gather"], spec["window_gather"]
    return {name: spec[name] for name in input_names}


def input_contract(session_or_model: Any) -> dict[str, Any]:
    """Names, element types and (symbolic) shapes of a model's inputs and outputs."""
    import onnx

    graph = session_or_model.graph

    def describe(values: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": value.name,
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name,
                "shape": [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim],
            }
            for value in values
        ]

    return {"inputs": describe(graph.input), "outputs": describe(graph.output)}


def export_fp32(
    vision: nn.Module,
    adapter: FamilyAdapter,
    example: dict[str, torch.Tensor],
    out_path: Path,
    opset: int = OPSET,
    attention: str = "segments",
    dynamic: bool = True,
) -> None:
    """``torch.onnx.export(dynamo=True)`` of the adapter's vision graph, traced on ``example`` (pixel_values, grid);
    ``dynamic=False`` fixes every input (the index inputs too) at the example's shapes."""
    graph = adapter.export_graph(vision, attention).eval()
    indices = adapter.export_inputs(example["image_grid_thw"], vision.config)
    inputs = {
        "pixel_values": example["pixel_values"].to(torch.float32),
        **{k: torch.from_numpy(v) for k, v in indices.items()},
    }
    output_names = graph.output_names()
    weight_bytes = sum(p.numel() * p.element_size() for p in vision.parameters())
    started = time.perf_counter()
    shapes = "dynamic" if dynamic else f"fixed to grid {example['image_grid_thw'].tolist()}"
    log.info("exporting the %s vision tower to ONNX (opset %d, shapes %s)…", adapter.model_type, opset, shapes)
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            graph,
            (),
            kwargs=inputs,
            dynamo=True,
            dynamic_shapes=_dynamic_shapes(list(inputs), vision.config.spatial_merge_size) if dynamic else None,
            opset_version=opset,
            input_names=list(inputs),
            output_names=output_names,
            verbose=False,
        )
    if program.model.opset_imports.get("", opset) != opset:
        # torch exports opset 18 at least (its onnxscript converter goes no lower); below that, ONNX's own C API
        # converter rewrites the graph (e.g. Reduce* axes back to attributes). check_fixed_shape verifies the result.
        from onnxscript.version_converter import convert_version

        stamped = {node.name: dict(node.metadata_props) for node in program.model.graph.all_nodes()}
        convert_version(program.model, opset, fallback=True)
        _drop_opset18_reduce_attribute(program.model)
        for node in program.model.graph.all_nodes():  # the C converter drops the module scopes the exporter stamped
            node.metadata_props.update(stamped.get(node.name, {}))
    program.save(str(out_path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)
    log.info("exported in %.0f s", time.perf_counter() - started)


# Reduce ops that gained an ``axes`` input and ``noop_with_empty_axes`` in opset 18 (ReduceSum: in 13).
OPSET18_REDUCE_OPS = frozenset(
    {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
     "ReduceSumSquare"}
)  # fmt: skip


def _drop_opset18_reduce_attribute(model: Any) -> None:
    """ONNX's converter (1.23) moves ``axes`` back to an attribute on 18→17 but keeps ``noop_with_empty_axes``, which
    opset 17 does not know (the checker rejects the graph). With ``axes`` given, it has no effect: drop it."""
    for node in model.graph.all_nodes():
        if node.op_type in OPSET18_REDUCE_OPS and node.domain == "" and "noop_with_empty_axes" in node.attributes:
            if "axes" not in node.attributes and node.attributes["noop_with_empty_axes"].as_int():
                raise ArtefactError(
                    f"{node.name}: {node.op_type} with noop_with_empty_axes=1 and no axes cannot be written in opset "
                    "17; export without --static-shape (opset 18)"
                )
            del node.attributes["noop_with_empty_axes"]


def convert_precision(fp32_path: Path, out_path: Path, precision: Precision) -> None:
    """fp16: weights and compute in half precision, fp32 at the I/O; int8: ORT dynamic quantization (QInt8 weights);
    bf16: the NPU's BF16 compute simulated in fp32 kernels (``export.bf16``)."""
    import onnx

    if precision == "bf16":
        from vlparity.export.bf16 import simulate_bf16

        save_onnx(simulate_bf16(onnx.load(str(fp32_path))), out_path)
    elif precision == "fp16":
        import onnx_ir
        from onnx.external_data_helper import load_external_data_for_model
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # The converter's own shape inference serialises the model, which protobuf refuses beyond 2 GiB (a 3B-class
        # tower is 2.7 GB in fp32): infer shapes on the graph without its weights, then attach them and convert.
        model = onnx.shape_inference.infer_shapes(onnx.load(str(fp32_path), load_external_data=False))
        load_external_data_for_model(model, str(fp32_path.parent))
        model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
        # The converter appends the fp32→fp16 input casts at the end of the node list; the full checker rejects a
        # graph that is not topologically sorted, so sort it.
        graph = onnx_ir.from_proto(model)
        graph.graph.sort()
        save_onnx(onnx_ir.to_proto(graph), out_path)
    elif precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8)
        # onnxruntime 1.30's quantizer leaves value_info entries whose shapes contradict the rewritten graph
        # (strict shape inference: "Inferred shape and existing shape differ"); they are optional hints: drop them.
        model = onnx.load(str(out_path))
        del model.graph.value_info[:]
        save_onnx(model, out_path)
    else:
        raise ValueError(precision)


def save_onnx(model: Any, path: Path) -> None:
    """Save ``model``, its weights in ``<name>.data`` beside it when they exceed ``EXTERNAL_DATA_BYTES``."""
    import onnx

    weight_bytes = sum(len(tensor.raw_data) for tensor in model.graph.initializer)
    external = weight_bytes > EXTERNAL_DATA_BYTES
    onnx.save(model, str(path), save_as_external_data=external, location=f"{path.name}.data" if external else None)


def validate(path: Path) -> Any:
    """Full ``onnx.checker`` check and strict shape inference; any failure is an ArtefactError naming the file."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
        onnx.shape_inference.infer_shapes_path(str(path), str(path.with_suffix(".inferred.onnx")), strict_mode=True)
        path.with_suffix(".inferred.onnx").unlink()
    except Exception as exc:  # onnx raises ValidationError, InferenceError, and plain RuntimeErrors
        raise ArtefactError(f"{path}: ONNX validation failed ({type(exc).__name__}: {exc})") from exc
    return onnx.load(str(path), load_external_data=False)


def check_fixed_shape(path: Path, model: Any, opset: int) -> None:
    """A fixed-shape export must be what the NPU flow takes: every input dimension a number and the default-domain
    opset ``opset``. Raises ArtefactError naming what is not."""
    symbolic = [
        f"{value.name}{[dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]}"
        for value in model.graph.input
        if any(not dim.HasField("dim_value") or dim.dim_value <= 0 for dim in value.type.tensor_type.shape.dim)
    ]
    opsets = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
    problems = ([f"symbolic input dims: {', '.join(symbolic)}"] if symbolic else []) + (
        [f"opset {opsets} instead of {opset}"] if opsets != [opset] else []
    )
    if problems:
        raise ArtefactError(
            f"{path}: not a fixed-shape export ({'; '.join(problems)}). Delete it so that vlparity exports it again."
        )


def stamp_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Write ``metadata_props`` (source hash, versions, opset, input contract) into the model file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    contract = input_contract(model)
    values = {**metadata, "input_contract": json.dumps(contract, sort_keys=True)}
    del model.metadata_props[:]
    for key, value in sorted(values.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    onnx.save(model, str(path))


def split_embeddings(image_embeds: np.ndarray, grid_thw: np.ndarray, merge_size: int) -> list[np.ndarray]:
    sizes = (np.prod(np.asarray(grid_thw), axis=-1) // merge_size**2).tolist()
    return np.split(image_embeds, np.cumsum(sizes)[:-1])
