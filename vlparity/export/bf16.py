"""``onnx-bf16``: the fp32 vision graph rewritten so that ONNX Runtime's CPU EP computes what a BF16 NPU computes.

AMD's Ryzen AI flow takes transformer models as FP32 ONNX and converts them to BF16 when the VitisAI EP compiles
them (docs/npu.md, "`onnx-bf16`: what is rounded, and why"). ORT's CPU EP has almost no bfloat16 kernels, so the
numbers are simulated:

* every float initializer (weights, biases, constants) is rounded to the nearest bfloat16 (round to nearest even)
  and kept as float32: the values the NPU holds, without needing a bf16 kernel to read them;
* every float tensor that crosses an operator boundary (each float graph input and each float output of every node,
  graph outputs included) passes through ``Cast(float→bfloat16) → Cast(bfloat16→float)``: activations are stored
  in bf16 between operators, as on the NPU, while each operator computes inside in float32 (the NPU's bf16 MACs
  accumulate in fp32).

Integer tensors (index inputs, shapes) are untouched. ORT's CPU ``Cast`` to bfloat16 rounds to nearest even, the
same as ``ml_dtypes.bfloat16`` (``tests/unit/test_npu_variants.py`` checks it on ORT's fully optimized session, which
could otherwise fold the cast pairs away).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlparity.errors import ArtefactError

ROUNDED_SUFFIX = "/bf16_rounded"  # a graph input's rounded copy
UNROUNDED_SUFFIX = "/fp32"  # a node output before rounding (the rounded value keeps the original name)


def round_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), returned as float32."""
    import ml_dtypes

    return np.asarray(values, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _float_tensors(model: Any) -> set[str]:
    """Names of every float32 value in the graph (inputs, node outputs), from strict shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {value.name for value in values if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def _round_trip(name: str, rounded: str, nodes: list[Any]) -> None:
    """Append ``Cast(float→bf16) → Cast(bf16→float)`` from ``name`` to ``rounded``."""
    from onnx import TensorProto, helper

    narrow = f"{rounded}/bf16"
    nodes.append(helper.make_node("Cast", [name], [narrow], name=f"{narrow}/cast", to=TensorProto.BFLOAT16))
    nodes.append(helper.make_node("Cast", [narrow], [rounded], name=f"{rounded}/cast", to=TensorProto.FLOAT))


def simulate_bf16(model: Any) -> Any:
    """Rewrite ``model`` (an fp32 ``ModelProto`` with its weights loaded) in place as the BF16 simulation described in
    the module docstring, and return it. Raises ArtefactError for a graph this rewrite cannot take (subgraphs)."""
    from onnx import AttributeProto, TensorProto, numpy_helper

    graph = model.graph
    nested = sorted(
        {
            node.op_type
            for node in graph.node
            for a in node.attribute
            if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
        }
    )
    if nested:
        raise ArtefactError(f"the BF16 simulation cannot rewrite subgraphs ({', '.join(nested)}); use onnx-fp16")
    floats = _float_tensors(model)
    for initializer in graph.initializer:
        if initializer.data_type == TensorProto.FLOAT:
            rounded = numpy_helper.from_array(round_to_bf16(numpy_helper.to_array(initializer)), initializer.name)
            initializer.CopyFrom(rounded)
    nodes: list[Any] = []
    renamed: dict[str, str] = {}  # graph input → its rounded copy
    for value in graph.input:
        if value.name in floats:
            renamed[value.name] = value.name + ROUNDED_SUFFIX
            _round_trip(value.name, renamed[value.name], nodes)
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = renamed.get(name, name)
        outputs = [(index, name) for index, name in enumerate(node.output) if name in floats]
        for index, name in outputs:
            node.output[index] = name + UNROUNDED_SUFFIX
        nodes.append(node)
        for _, name in outputs:
            _round_trip(name + UNROUNDED_SUFFIX, name, nodes)
    del graph.value_info[:]  # hints about the old graph; shape inference rebuilds them
    copies = [type(node)() for node in nodes]
    for copy, node in zip(copies, nodes, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
    return model
