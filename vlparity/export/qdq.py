"""``onnx-qdq``: static QDQ int8 of the fp32 vision export, calibrated on images, as the Ryzen AI NPU's integer flow
takes it (docs/npu.md, "`onnx-qdq`: static QDQ int8").

AMD Quark's ONNX quantizer (``amd-quark``) runs when it is installed, with its own ``XINT8`` / ``A8W8`` / ``A16W8``
configurations. Without it, ONNX Runtime's ``quantize_static`` runs the nearest equivalent, and the artefact says
so (``quantizer`` in its metadata and in the report's path details):

* ``a8w8``: int8 activations and weights, symmetric, per-tensor, MinMax calibration (Quark's A8W8);
* ``a16w8``: int16 activations, int8 weights, symmetric, MinMax (Quark's A16W8; ORT raises the graph to opset 21,
  the first with 16-bit Q/DQ, so it cannot be a fixed-shape opset-17 export);
* ``xint8``: as Quark's XINT8 (uint8 symmetric activations, int8 weights) with every scale rounded *up* to a power of
  two after MinMax calibration (Quark searches power-of-two scales by MinMSE; rounding up never clips).

Every op type ORT's QDQ quantizer supports is quantized (``Conv``, ``Gemm``, ``MatMul``, data movement) except
``Where`` (``UNQUANTIZED_OPS``); biases stay in float (ORT's int32 bias would tie its scale to the rounded ones).

``--qdq-exclude`` keeps named nodes in float (``nodes_to_exclude``, as ORT's and Quark's quantizers call it). Both
quantizers ignore a name the graph lacks, so names are checked against the fp32 graph first (``check_node_names``).
An excluded node also reads float inputs: where a tensor it reads is quantized for another consumer, ORT hands the
dequantized value to every consumer, so the excluded node's inputs are wired back to the float tensors
(``float_inputs_for``).

numpy and PIL are imported where they are used: the pytest plugin reads ``QDQ_CONFIGS`` at start-up.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vlparity.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

log = logging.getLogger(__name__)

QdqConfig = Literal["xint8", "a8w8", "a16w8"]
QDQ_CONFIGS: tuple[QdqConfig, ...] = ("xint8", "a8w8", "a16w8")
DEFAULT_QDQ_CONFIG: QdqConfig = "a8w8"
# Synthetic calibration scenes beside the fixture images: (seed, width, height), sizes the processor keeps as they are
CALIBRATION_SCENES = ((1, 224, 224), (2, 336, 224), (3, 112, 448), (4, 448, 336))
# The attention key mask: Where(valid, 0, -inf) (export.vision_graph's additive mask), a range no 8- or 16-bit scale
# can hold (with it quantized the fixture's min cosine is 0.46 even at int16; without, 0.98 at int8, 1.0 at int16).
UNQUANTIZED_OPS = frozenset({"Where"})
FALLBACK_NOTICE = (
    "amd-quark is not installed: onnx-qdq is quantized by onnxruntime.quantization.quantize_static (the fallback; "
    "pip install amd-quark in an environment with onnx<=1.22 to use AMD Quark)"
)


def quark_available() -> bool:
    return importlib.util.find_spec("quark") is not None


def quantizer_name() -> str:
    """Which quantizer builds onnx-qdq here, with its version: part of the cache key and the report."""
    if quark_available():
        return f"amd-quark {importlib.metadata.version('amd-quark')}"
    return f"onnxruntime.quantization.quantize_static {importlib.metadata.version('onnxruntime')} (fallback)"


def calibration_images() -> list[Image.Image]:
    """The fixture images plus a few deterministic synthetic scenes (``vlparity.synthetic``), as RGB."""
    from PIL import Image

    from vlparity import synthetic
    from vlparity.inputs import fixture_images

    images = [Image.open(path).convert("RGB") for path in fixture_images()]
    scenes = [synthetic.random_scene(random.Random(seed), w, h) for seed, w, h in CALIBRATION_SCENES]
    return images + [synthetic.render(scene).convert("RGB") for scene in scenes]


def calibration_digest(images: list[Image.Image]) -> str:
    """sha256 over the calibration images' pixels: a changed calibration set means a new artefact."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{image.size}".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


class FeedReader:
    """An ONNX Runtime (and Quark) ``CalibrationDataReader``: one feed dict per calibration image."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._iterator: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iterator, None)

    def rewind(self) -> None:
        self._iterator = iter(self.feeds)


def check_qdq_config(config: QdqConfig, fixed_shape: bool) -> None:
    """Refuse, before any work, what the quantizer here cannot write: a16w8 at opset 17 without Quark."""
    if config == "a16w8" and fixed_shape and not quark_available():
        raise UsageError(
            "--qdq-config a16w8 with --static-shape: onnxruntime's quantize_static (the fallback: amd-quark is not "
            "installed) writes 16-bit QDQ only at opset 21, the fixed-shape export is opset 17. Use a8w8 or xint8, "
            "or install amd-quark."
        )


def node_names_from(value: str, option: str = "--qdq-exclude") -> list[str]:
    """The node names of one ``--qdq-exclude`` value: comma-separated items, each a node name or ``@FILE``, a file with
    one name per line (blank lines and ``#`` comments skipped) or a JSON list of names. A file that cannot be read is a
    UsageError naming it."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    return [name for item in items for name in (_names_in_file(item[1:], option) if item[0] == "@" else [item])]


def _names_in_file(file: str, option: str) -> list[str]:
    path = Path(file).expanduser()
    where = f"{option} @{path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file (a file with one node name per line, or a JSON list)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({type(exc).__name__}: {exc})") from None
    if not text.lstrip().startswith(("[", "{")):  # not JSON: one name per line
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    try:
        names = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not a valid JSON list ({exc}); write one node name per line instead") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UsageError(f"{where}: expected a JSON list of node names (strings)")
    return [name.strip() for name in names if name.strip()]


def parse_qdq_exclude(values: Iterable[str], option: str = "--qdq-exclude") -> tuple[str, ...]:
    """Every name the (repeated) option gives, sorted and de-duplicated: the order they are given in does not change
    the artefact or its cache key."""
    return normalise_node_names(name for value in values for name in node_names_from(value, option))


def normalise_node_names(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))


def check_node_names(model_path: Path, names: Sequence[str], option: str = "--qdq-exclude") -> None:
    """Refuse names that are not nodes of ``model_path`` (ORT and Quark skip them silently: a typo would quantize the
    node it meant). The message names each unknown name and up to 3 closest node names."""
    if not names:
        return
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    known = [node.name for node in graph.node]
    unknown = [name for name in names if name not in set(known)]
    if not unknown:
        return
    hints = "; ".join(
        f"{name!r} (closest: {', '.join(difflib.get_close_matches(name, known, n=3, cutoff=0.3)) or 'none'})"
        for name in unknown
    )
    raise UsageError(
        f"{option}: {len(unknown)} name(s) not among the {len(known)} nodes of the fp32 vision graph {model_path}: "
        f"{hints}. Node names are the ONNX graph's own (e.g. node_linear_3, node_masked_fill)."
    )


def quantize_qdq(
    fp32_path: Path,
    out_path: Path,
    feeds: list[dict[str, np.ndarray]],
    config: QdqConfig,
    nodes_to_exclude: Sequence[str] = (),
) -> str:
    """Write the static QDQ model of ``fp32_path`` calibrated on ``feeds``, ``nodes_to_exclude`` kept in float; return
    the quantizer's name. Unknown node names are refused before anything is quantized."""
    nodes_to_exclude = normalise_node_names(nodes_to_exclude)
    check_node_names(fp32_path, nodes_to_exclude)
    name = quantizer_name()
    if nodes_to_exclude:
        log.info("onnx-qdq: %d node(s) kept in float (--qdq-exclude)", len(nodes_to_exclude))
    if quark_available():
        _quantize_with_quark(fp32_path, out_path, FeedReader(feeds), config, nodes_to_exclude)
    else:
        log.warning(FALLBACK_NOTICE)
        _quantize_with_ort(fp32_path, out_path, FeedReader(feeds), config, nodes_to_exclude)
    return name


def _quantize_with_quark(
    fp32_path: Path, out_path: Path, reader: FeedReader, config: QdqConfig, nodes_to_exclude: Sequence[str] = ()
) -> None:
    from quark.onnx import ModelQuantizer
    from quark.onnx.quantization.config import Config, get_default_config

    from vlparity.export.onnx_vision import save_onnx

    # get_default_config returns a copy of Quark's QuantizationConfig, whose nodes_to_exclude is a list of node names
    global_config = get_default_config(config.upper())
    global_config.nodes_to_exclude = [*global_config.nodes_to_exclude, *nodes_to_exclude]
    quantizer = ModelQuantizer(Config(global_quant_config=global_config))
    quantizer.quantize_model(str(fp32_path), str(out_path), reader)
    if nodes_to_exclude:
        import onnx

        model = onnx.load(str(out_path))
        float_inputs_for(model, fp32_path, nodes_to_exclude)
        save_onnx(model, out_path)


def _quantize_with_ort(
    fp32_path: Path, out_path: Path, reader: FeedReader, config: QdqConfig, nodes_to_exclude: Sequence[str] = ()
) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry

    from vlparity.export.onnx_vision import save_onnx

    activation = {"xint8": QuantType.QUInt8, "a8w8": QuantType.QInt8, "a16w8": QuantType.QInt16}[config]
    quantize_static(
        str(fp32_path), str(out_path), reader,
        quant_format=QuantFormat.QDQ, activation_type=activation, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, per_channel=False,
        op_types_to_quantize=sorted(set(QDQRegistry) - UNQUANTIZED_OPS), nodes_to_exclude=list(nodes_to_exclude),
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )  # fmt: skip
    model = onnx.load(str(out_path))
    float_inputs_for(model, fp32_path, nodes_to_exclude)
    if config == "xint8":
        power_of_two_scales(model)
    del model.graph.value_info[:]  # as for int8: stale shape hints the strict shape inference rejects
    save_onnx(model, out_path)


def is_quantize(node: Any) -> bool:  # QuantizeLinear and Quark's Extended…/Vitis… variants
    return node.op_type.endswith("QuantizeLinear")


def is_dequantize(node: Any) -> bool:
    return node.op_type.endswith("DequantizeLinear")


def float_inputs_for(model: Any, fp32_path: Path, names: Sequence[str]) -> None:
    """Feed each node in ``names`` the float tensors it read in the fp32 graph. A quantizer that quantizes a tensor for
    one consumer rewires every consumer to the dequantized copy (ORT's ``replace_input_of_all_nodes``), an excluded
    one included: follow ``DequantizeLinear ← QuantizeLinear`` back to the float activation, or, for a quantized
    initializer (a weight shared with a quantized node), restore the fp32 graph's initializer. Q/DQ nodes and
    initializers left without a consumer are removed."""
    if not names:
        return
    import onnx
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    by_name = {node.name: node for node in graph.node}
    fp32_graph = onnx.load(str(fp32_path), load_external_data=False).graph
    fp32_nodes = {node.name: node for node in fp32_graph.node}
    fp32_initializers = {tensor.name: tensor for tensor in fp32_graph.initializer}
    initializers = {tensor.name for tensor in graph.initializer}

    def float_source(tensor: str) -> str | None:
        while tensor in producers and is_dequantize(producers[tensor]):
            quantized = producers[tensor].input[0]
            if quantized not in producers or not is_quantize(producers[quantized]):
                return None  # an integer initializer: the float value is only in the fp32 graph
            tensor = producers[quantized].input[0]
        return tensor

    for name in names:
        node = by_name.get(name)
        if node is None:  # e.g. fused away by Quark's graph optimizations
            log.warning("--qdq-exclude %s: no such node in the quantized graph; nothing to keep in float", name)
            continue
        for index, tensor in enumerate(node.input):
            if tensor not in producers or not is_dequantize(producers[tensor]):
                continue
            source = float_source(tensor)
            if source is None:
                source = fp32_nodes[name].input[index]
                if source not in initializers and source not in fp32_initializers:
                    log.warning("--qdq-exclude %s: input %d (%s) has no float value to restore", name, index, source)
                    continue
                if source not in initializers:
                    restored = onnx.TensorProto()
                    restored.CopyFrom(fp32_initializers[source])
                    if uses_external_data(restored):
                        load_external_data_for_tensor(restored, str(fp32_path.parent))
                        del restored.external_data[:]
                        restored.data_location = onnx.TensorProto.DEFAULT
                    graph.initializer.append(restored)
                    initializers.add(source)
            node.input[index] = source
    _remove_unused_qdq(graph)


def _remove_unused_qdq(graph: Any) -> None:
    """Drop Q/DQ nodes whose outputs nothing reads (left by ``float_inputs_for``), then the initializers only they
    read (their scales, zero points and quantized weights)."""
    kept = {value.name for value in [*graph.output, *graph.input]}
    freed: set[str] = set()
    while True:
        consumed = {tensor for node in graph.node for tensor in node.input} | kept
        unused = [node for node in graph.node if (is_quantize(node) or is_dequantize(node))
                  and not set(node.output) & consumed]  # fmt: skip
        if not unused:
            break
        for node in unused:
            freed.update(node.input)
            graph.node.remove(node)
    consumed = {tensor for node in graph.node for tensor in node.input} | kept
    for tensor in [tensor for tensor in graph.initializer if tensor.name in freed - consumed]:
        graph.initializer.remove(tensor)


def power_of_two_scales(model: Any) -> None:
    """Round every Q/DQ scale up to a power of two, re-quantizing the int8 weights stored under the old scale."""
    import numpy as np
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    rescaled: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # scale name → (old, new)
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.input[1] in rescaled:
            continue
        old = numpy_helper.to_array(initializers[node.input[1]])
        with np.errstate(divide="ignore"):  # a zero scale (a constant-zero tensor) stays zero
            rescaled[node.input[1]] = old, np.exp2(np.ceil(np.log2(old))).astype(old.dtype)
    weights = {node.input[0]: node for node in model.graph.node  # DequantizeLinear of an integer initializer
               if node.op_type == "DequantizeLinear" and node.input[0] in initializers}  # fmt: skip
    for node in weights.values():
        quantized = numpy_helper.to_array(initializers[node.input[0]])
        zero = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 else 0
        old, new = rescaled[node.input[1]]
        values = (quantized.astype(np.float64) - zero) * old
        info = np.iinfo(quantized.dtype)
        requantized = np.clip(np.round(values / new) + zero, info.min, info.max).astype(quantized.dtype)
        initializers[node.input[0]].CopyFrom(numpy_helper.from_array(requantized, node.input[0]))
    for name, (_, new) in rescaled.items():
        initializers[name].CopyFrom(numpy_helper.from_array(new, name))
