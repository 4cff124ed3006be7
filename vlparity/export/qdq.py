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
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from vlparity.errors import UsageError

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


def quantize_qdq(fp32_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]], config: QdqConfig) -> str:
    """Write the static QDQ model of ``fp32_path`` calibrated on ``feeds``; return the quantizer's name."""
    name = quantizer_name()
    if quark_available():
        _quantize_with_quark(fp32_path, out_path, FeedReader(feeds), config)
    else:
        log.warning(FALLBACK_NOTICE)
        _quantize_with_ort(fp32_path, out_path, FeedReader(feeds), config)
    return name


def _quantize_with_quark(fp32_path: Path, out_path: Path, reader: FeedReader, config: QdqConfig) -> None:
    from quark.onnx import ModelQuantizer
    from quark.onnx.quantization.config import Config, get_default_config

    quantizer = ModelQuantizer(Config(global_quant_config=get_default_config(config.upper())))
    quantizer.quantize_model(str(fp32_path), str(out_path), reader)


def _quantize_with_ort(fp32_path: Path, out_path: Path, reader: FeedReader, config: QdqConfig) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry

    from vlparity.export.onnx_vision import save_onnx

    activation = {"xint8": QuantType.QUInt8, "a8w8": QuantType.QInt8, "a16w8": QuantType.QInt16}[config]
    quantize_static(
        str(fp32_path), str(out_path), reader,
        quant_format=QuantFormat.QDQ, activation_type=activation, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, per_channel=False,
        op_types_to_quantize=sorted(set(QDQRegistry) - UNQUANTIZED_OPS),
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )  # fmt: skip
    model = onnx.load(str(out_path))
    if config == "xint8":
        power_of_two_scales(model)
    del model.graph.value_info[:]  # as for int8: stale shape hints the strict shape inference rejects
    save_onnx(model, out_path)


def power_of_two_scales(model: Any) -> None:
    """Round every Q/DQ scale up to a power of two, re-quantizing the int8 weights stored under the old scale."""
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
