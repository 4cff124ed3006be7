"""Every intermediate tensor and weight of a derived ONNX vision graph (``onnx-qdq``, ``onnx-bf16``) beside the same
tensor of the fp32 graph it was derived from, on the same feeds: what the per-tensor error table is computed from.

ONNX Runtime's ``onnxruntime.quantization.qdq_loss_debug`` does the work: both graphs are augmented so that every float
tensor is also a graph output, run with graph optimisation off (the graphs' own arithmetic, not ORT's fusions), and a
QDQ graph's activations are matched to the float graph's by its Q/DQ naming (``X`` → ``X_QuantizeLinear_Input`` /
``X_DequantizeLinear_Output``). The BF16 simulation keeps each tensor's name for its rounded value and names the value
before rounding ``X/fp32`` (``vlparity.export.bf16``); tensors neither rewrite touched match by name.

Running, not judging: the metrics are ``vlparity.parity.tensor_table``'s.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlparity.export.bf16 import UNROUNDED_SUFFIX

# Where a tensor sits in the vision tower, read from the module scope the exporter stamps on every node
# (``pkg.torch.onnx.name_scopes``) or from a weight name: ``blocks.N`` (or the exporter's ``attentions.N``) is block N.
SCOPE_KEY = "pkg.torch.onnx.name_scopes"
BLOCK_PATTERN = re.compile(r"(?:^|\.)(?:blocks|attentions)\.(\d+)(?:\.|$)")
BLOCK_OUTPUT_PATTERN = re.compile(r"^block_(\d+)$")  # the export's block outputs (export.onnx_vision)


@dataclass(frozen=True)
class TensorPair:
    """One tensor in both graphs. ``candidate`` is what the derived graph's consumers read (a QDQ graph: after
    DequantizeLinear; BF16: after rounding); ``unrounded`` is the derived graph's value before its own rounding of this
    tensor (QDQ: QuantizeLinear's input; BF16: the ``/fp32`` value), None where the tensor is not rounded."""

    reference: np.ndarray
    candidate: np.ndarray
    unrounded: np.ndarray | None


def location(scope: str) -> str:
    """``block N``, ``merger``, ``patch_embed`` or ``tower`` for a module scope or tensor/weight name."""
    match = BLOCK_PATTERN.search(scope) or BLOCK_OUTPUT_PATTERN.search(scope)
    if match:
        return f"block {int(match.group(1))}"
    for part in ("merger", "patch_embed"):
        if part in scope:
            return part
    return "tower"


def tensor_scopes(model: Any) -> dict[str, str]:
    """Module scope of every node output of ``model`` (an fp32 export), e.g. ``vision.blocks.2.mlp.down_proj``; the
    output's own name where the exporter stamped no scope (a graph rewritten by another tool)."""
    import ast

    scopes = {}
    for node in model.graph.node:
        stamped = next((prop.value for prop in node.metadata_props if prop.key == SCOPE_KEY), None)
        modules = [s for s in ast.literal_eval(stamped)[:-1] if s] if stamped else []  # last entry: the node itself
        for output in node.output:
            scopes[output] = modules[-1] if modules else output
    return scopes


def _augmented_session(model_path: Path, workdir: Path) -> Any:
    """An ORT session (CPU, optimisation off) of ``model_path`` with every float tensor also a graph output."""
    import onnxruntime
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    augmented = workdir / f"{model_path.parent.name}-{model_path.name}"
    modify_model_output_intermediate_tensors(model_path, augmented, save_as_external_data=True)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3  # the augmented outputs' shape warnings are not the user's concern
    return onnxruntime.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])


def _intermediates(session: Any, feeds: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """``collect_activations``' result for one feed, from an already built session (built once per model)."""
    from onnxruntime.quantization.qdq_loss_debug import _TENSOR_SAVE_POSTFIX

    names = [output.name for output in session.get_outputs()]
    values = session.run(None, feeds)
    return {
        name[: -len(_TENSOR_SAVE_POSTFIX)]: [value]
        for name, value in zip(names, values, strict=True)
        if name.endswith(_TENSOR_SAVE_POSTFIX)
    }


class ActivationProbe:
    """The fp32 graph and a graph derived from it, both augmented once, run side by side on the same feeds."""

    def __init__(self, reference_model: Path, candidate_model: Path) -> None:
        import onnx

        self.reference_model, self.candidate_model = reference_model, candidate_model
        self.scopes = tensor_scopes(onnx.load(str(reference_model), load_external_data=False))
        with tempfile.TemporaryDirectory(prefix="vlparity-activations-") as workdir:  # ORT has read it all by the end
            self._reference = _augmented_session(reference_model, Path(workdir))
            self._candidate = _augmented_session(candidate_model, Path(workdir))

    def pairs(self, feeds: dict[str, np.ndarray]) -> dict[str, TensorPair]:
        """Every float tensor present in both graphs for one run on ``feeds``, keyed by the float graph's name."""
        from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

        reference = _intermediates(self._reference, feeds)
        candidate = _intermediates(self._candidate, feeds)
        pairs = {}
        for name, match in create_activation_matching(candidate, reference).items():  # Q/DQ-rounded tensors
            if "float" in match:
                pairs[name] = TensorPair(match["float"][0], match["post_qdq"][0], match["pre_qdq"][0])
        for name, values in reference.items():
            if name in pairs or name not in candidate:
                continue
            unrounded = candidate.get(name + UNROUNDED_SUFFIX)  # the BF16 simulation's value before rounding
            pairs[name] = TensorPair(values[0], candidate[name][0], unrounded[0] if unrounded else None)
        return pairs

    def weights(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, fp32 value, derived graph's value) of every float weight the derived graph changed: a QDQ graph's
        dequantized integer weights (ORT's ``create_weight_matching``), or same-name initializers that differ."""
        import onnx
        from onnx import numpy_helper
        from onnxruntime.quantization.qdq_loss_debug import create_weight_matching

        matched = create_weight_matching(str(self.reference_model), str(self.candidate_model))
        for name, match in matched.items():
            yield name, match["float"], np.asarray(match["dequantized"], np.float32)
        reference = {t.name: t for t in onnx.load(str(self.reference_model)).graph.initializer}
        for tensor in onnx.load(str(self.candidate_model)).graph.initializer:
            if tensor.name in matched or tensor.name not in reference:
                continue
            if tensor.data_type != onnx.TensorProto.FLOAT:
                continue
            before, after = numpy_helper.to_array(reference[tensor.name]), numpy_helper.to_array(tensor)
            if before.shape != after.shape or not np.array_equal(before, after):
                yield tensor.name, before, after
