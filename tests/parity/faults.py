"""Planted faults: the table of faults the gate must catch, how each is planted in a copy of a path's artefacts (never
in the source model, which every path shares), and how a fresh session judges it.

    .venv/bin/python -m tests.parity.faults [--model fixtures/qwen2_vl]   # docs/fault-injection.md's measured table

Every artefact copy is re-signed after the fault is planted (``resign``), so the manifest check cannot notice and only
the parity checks can.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image
from safetensors.torch import load_file, save_file

from vlparity.errors import VlparityError
from vlparity.export.onnx_vision import MODEL_NAME
from vlparity.hashing import tree_sha256
from vlparity.inputs import Sample, fixture_images, fixture_prompts
from vlparity.manifest import MANIFEST_NAME
from vlparity.model_source import FIXTURE_FAMILIES, resolve_model
from vlparity.paths import PATHS, PathContext, PathRunner
from vlparity.paths.awq import AwqPath
from vlparity.paths.onnx import OnnxPath
from vlparity.paths.split import SplitPath
from vlparity.report.model import CheckResult
from vlparity.runtime.ort import OrtOptions
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession, RunSettings
from vlparity.vision_features import VisionFeatures

HAS_AWQ = importlib.util.find_spec("awq") is not None


def _area(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


# The smallest fixture image: every fault below is caught on it, and it keeps the suite fast.
SAMPLE = Sample((min(fixture_images(), key=_area),), fixture_prompts()[0])
MAX_NEW_TOKENS = 4
# One layer's AWQ scales corrupted, sized to each family's KL limit (measured on SAMPLE, docs/fault-injection.md):
# ×3 → KL 0.097 on Qwen2.5-VL (limit 0.01); Qwen2-VL's quantization floor is 21× higher (limit 0.15): ×30 → 0.23.
SCALES_FAULT = {"qwen2_5_vl": 3, "qwen2_vl": 30, "qwen3_vl": 3}
RELATIVE_WEIGHT_FAULT = 1e-3  # "a vision block weight off by 1e-3 relative"
ARTEFACT_DIRS = {  # where each runner keeps its files
    "split": "artefact_dir", "onnx": "onnx_dir", "onnx-bf16": "onnx_dir", "onnx-qdq": "onnx_dir", "awq": "awq_dir"
}  # fmt: skip
# the MLP's output projection (Qwen2.5-VL, Qwen2-VL, Qwen3-VL)
MLP_OUT = ("mlp.down_proj.", "mlp.fc2.", "mlp.linear_fc2.")


# --- planting helpers -------------------------------------------------------------------------------------------------


def resign(directory: Path) -> None:
    """Recompute the manifest after a planted fault, so that only the parity checks can notice it."""
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["files"] = {k: v for k, v in tree_sha256(directory).items() if k != MANIFEST_NAME}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def edit_tensor(weights: Path, matches: Callable[[str], bool], edit: Callable[[torch.Tensor], None]) -> str:
    """Apply ``edit`` in place to the first 2-D tensor (in name order) of a safetensors file that ``matches``."""
    tensors = load_file(weights)
    key = next(k for k in sorted(tensors) if matches(k) and tensors[k].ndim == 2)
    edit(tensors[key])
    save_file(tensors, weights, metadata={"format": "pt"})
    return key


def perturb_merger_weight(split_dir: Path, delta: float) -> str:
    """Add ``delta`` to one merger weight of a split artefact and re-sign it (so only the parity checks notice)."""
    main_merger = re.compile(r"(^|\.)merger\..*weight$")  # not a DeepStack level's merger (Qwen3-VL)
    key = edit_tensor(
        split_dir / "vision" / "model.safetensors", lambda k: bool(main_merger.search(k)), add_first(delta)
    )
    resign(split_dir)
    return key


def scale_onnx_weight(model_path: Path, matches: Callable[[str], bool], factor: float) -> str:
    """Scale the first 2-D initializer of an ONNX file whose name ``matches`` by ``factor``."""
    model = onnx.load(str(model_path))
    initializer = next(i for i in model.graph.initializer if matches(i.name) and len(i.dims) == 2)
    initializer.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(initializer) * factor, initializer.name))
    onnx.save(model, str(model_path))
    return initializer.name


def scale_qdq_weight_scale(model_path: Path, matches: Callable[[str], bool], factor: float) -> str:
    """Scale the scale of the first DequantizeLinear whose (quantized) weight name ``matches`` by ``factor``: the
    integer weights stay, so the dequantized weight is ``factor`` × what the quantizer computed."""
    model = onnx.load(str(model_path))
    initializers = {i.name: i for i in model.graph.initializer}
    dequantized = (n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers)
    node = next(n for n in dequantized if matches(n.input[0]))
    scale_tensor = initializers[node.input[1]]
    scale_tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale_tensor) * factor, scale_tensor.name))
    onnx.save(model, str(model_path))
    return node.input[0]


def in_block(block: int, part: str | tuple[str, ...]) -> Callable[[str], bool]:
    if isinstance(part, tuple):
        return lambda name: any(f"blocks.{block}.{one}" in name for one in part)
    return lambda name: f"blocks.{block}.{part}" in name


def in_layer(layer: int, part: str) -> Callable[[str], bool]:
    return lambda name: f"layers.{layer}.{part}" in name


def scale(factor: float) -> Callable[[torch.Tensor], None]:
    return lambda tensor: tensor.mul_(factor)


def set_first(value: float) -> Callable[[torch.Tensor], None]:
    def edit(tensor: torch.Tensor) -> None:
        tensor[0, 0] = value

    return edit


def add_first(delta: float) -> Callable[[torch.Tensor], None]:
    def edit(tensor: torch.Tensor) -> None:
        tensor[0, 0] += delta

    return edit


# --- runners with a runtime fault (what a buggy deployment does with correct files) -----------------------------------


class SwappedWindowIndex(OnnxPath):
    """Feeds the graph a window index with two entries swapped (an export-input bug)."""

    def feeds(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> dict[str, np.ndarray]:
        return _swap_first_and_last(super().feeds(pixel_values, grid_thw), "window_index")


class SwappedPositionIds(OnnxPath):
    """Feeds the graph rotary position ids with the first and last patch's rows swapped."""

    def feeds(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> dict[str, np.ndarray]:
        return _swap_first_and_last(super().feeds(pixel_values, grid_thw), "position_ids")


def _swap_first_and_last(feeds: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    feeds[name] = feeds[name].copy()
    feeds[name][[0, -1]] = feeds[name][[-1, 0]]
    return feeds


class Fp16Embeddings(OnnxPath):
    """Rounds the image embeddings through float16 on their way to an fp32 LM (a stray ``.half()``)."""

    def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures[torch.Tensor]:
        return super()._encode(pixel_values, grid_thw).map(lambda embedding: embedding.half().to(embedding.dtype))


class OneTokenShort(OnnxPath):
    """Returns one image token too few per image (e.g. a merge-size or cropping bug in the vision glue)."""

    def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures[torch.Tensor]:
        return super()._encode(pixel_values, grid_thw).map(lambda embedding: embedding[:-1])


class SilentCpuFallback(OnnxPath):
    """As if ``--ep cuda`` had been asked for and ORT had quietly run every node on the CPU EP (no GPU needed)."""

    def _load_vision(self) -> None:
        super()._load_vision()
        self.session.provider = "CUDAExecutionProvider"
        self.session.options = dataclasses.replace(self.session.options, ep="cuda")


# --- the bench and the table ------------------------------------------------------------------------------------------


@dataclass
class Bench:
    """Where faults are planted: the genuine artefacts (built once, then cached), one loaded reference model shared by
    every judging session, and a scratch folder for faulty copies."""

    settings: RunSettings
    scratch: Path
    _copies: int = field(default=0, init=False)

    @cached_property
    def genuine(self) -> ParitySession:
        paths = ("original", "split", "onnx", "onnx-bf16", "onnx-qdq", *(("awq",) if HAS_AWQ else ()))
        return ParitySession(dataclasses.replace(self.settings, paths=paths))

    def artefact(self, name: str) -> Path:
        """The genuine ``name`` artefact's directory (built on first use, then cached)."""
        return getattr(self.genuine.runner(name), ARTEFACT_DIRS[name])

    def copy(self, name: str) -> Path:
        """A fresh copy of the genuine ``name`` artefact to plant a fault in."""
        self._copies += 1
        target = self.scratch / f"{name}-{self._copies}"
        shutil.copytree(self.artefact(name), target)
        return target

    @cached_property
    def changed_model(self) -> Path:
        """A copy of the source model with one vision block weight off by 1e-3 relative (the source changed)."""
        target = self.scratch / "changed-model"
        shutil.copytree(self.genuine.context.source.directory, target)
        edit_tensor(target / "model.safetensors", in_block(2, "mlp"), scale(1 + RELATIVE_WEIGHT_FAULT))
        return target

    def session(self, path: str, model: Path | None = None) -> ParitySession:
        """A fresh session judging ``path``: reference results are never shared with the run's own report."""
        settings = dataclasses.replace(self.settings, paths=("original", path))
        if model is not None:
            return ParitySession(dataclasses.replace(settings, model=str(model)))
        session = ParitySession(settings)
        session.use_runner(self.genuine.runner("original"))
        return session


Plant = Callable[[Bench, PathContext], PathRunner]


@dataclass(frozen=True)
class Fault:
    kind: str  # the test id
    planted: str  # what was done, for the docs table
    path: str  # the path judged
    plant: Plant
    stage: tuple[str, ...]  # texts the failure must contain: the stage and the rule that tripped
    where: str | None = None  # the text naming where the divergence starts, where the report can tell
    families: tuple[str, ...] = FIXTURE_FAMILIES
    changed_source: bool = False  # judged against the changed copy of the source model (stale artefacts)
    needs_awq: bool = False


def _split_copy(bench: Bench, context: PathContext, part: str, plant: Callable[[Path], object]) -> SplitPath:
    copy = bench.copy("split")
    plant(copy / part)
    resign(copy)
    return SplitPath(context, artefact_dir=copy)


def _awq_copy(bench: Bench, context: PathContext, plant: Callable[[Path], object]) -> AwqPath:
    copy = bench.copy("awq")
    plant(copy)
    resign(copy)
    runner = AwqPath(context)
    runner.awq_dir = copy
    return runner


def _merger_weight(bench: Bench, context: PathContext) -> SplitPath:
    copy = bench.copy("split")
    perturb_merger_weight(copy, 1e-3)
    return SplitPath(context, artefact_dir=copy)


def _onnx_block_weight(bench: Bench, context: PathContext) -> OnnxPath:
    copy = bench.copy("onnx")
    scale_onnx_weight(copy / MODEL_NAME, in_block(2, "mlp"), 1 + RELATIVE_WEIGHT_FAULT)
    resign(copy)
    return OnnxPath(context, onnx_dir=copy)


def _derived_onnx_copy(path: str, plant: Callable[[Path], object]) -> Plant:
    """A copy of the genuine onnx-bf16 / onnx-qdq artefact with ``plant`` applied to its graph."""

    def planted(bench: Bench, context: PathContext) -> OnnxPath:
        copy = bench.copy(path)
        plant(copy / MODEL_NAME)
        resign(copy)
        return PATHS[path](context, onnx_dir=copy)

    return planted


def _stale_export(bench: Bench, context: PathContext) -> OnnxPath:
    return OnnxPath(context, onnx_dir=bench.artefact("onnx"))


def _stale_export_forged(bench: Bench, context: PathContext) -> OnnxPath:
    copy = bench.copy("onnx")
    edit_json(copy / MANIFEST_NAME, lambda manifest: manifest.update(source_sha256=context.source.content_hash()))
    resign(copy)
    return OnnxPath(context, onnx_dir=copy)


def _awq_scales(bench: Bench, context: PathContext) -> AwqPath:
    factor = SCALES_FAULT[context.source.model_type]
    scales = in_layer(0, "mlp.down_proj.scales")
    return _awq_copy(bench, context, lambda d: edit_tensor(d / "model.safetensors", scales, scale(factor)))


def _awq_config(edit: Callable[[dict[str, Any]], None]) -> Plant:
    return lambda bench, context: _awq_copy(bench, context, lambda d: edit_json(d / "config.json", edit))


def _awq_kernel_fault(bench: Bench, context: PathContext) -> AwqPath:
    """One AWQ linear's output 5 % off: hides in quantization noise, not from the float twin (built from the file)."""
    runner = AwqPath(context)
    runner.prepare()
    linear = runner.language.model.language_model.layers[0].mlp.down_proj
    linear.register_forward_hook(lambda _module, _inputs, output: output * 1.05)
    return runner


def _runtime(runner: type[OnnxPath]) -> Plant:
    return lambda _bench, context: runner(context)


def _quantize_vision_too(config: dict[str, Any]) -> None:
    config["quantization_config"]["modules_to_not_convert"] = ["visual"]  # what AutoAWQ writes


def _halve_group_size(config: dict[str, Any]) -> None:
    config["quantization_config"]["group_size"] //= 2


def _swap_mrope_sections(config: dict[str, Any]) -> None:
    sections = config["text_config"]["rope_parameters"]["mrope_section"]
    sections[0], sections[1] = sections[1], sections[0]


def _shorten_mrope_height(config: dict[str, Any]) -> None:
    """One frequency pair moved from the height section to the temporal one. Qwen3-VL interleaves the sections
    (pair i rotates by t, h, w for i mod 3 = 0, 1, 2, up to 3 × the section length): a t/h swap of [6, 5, 5] only
    moves pair 16, which head_dim 32 does not have — the swap changes nothing there (measured: bit-identical)."""
    sections = config["text_config"]["rope_parameters"]["mrope_section"]
    sections[0], sections[1] = sections[0] + 1, sections[1] - 1


FAULTS = [
    Fault(
        "vision-block-weight-1e-3", "ONNX file: one block-2 MLP weight ×(1 + 1e-3)", "onnx", _onnx_block_weight,
        ("vision: ", "max |Δ|", "exporter problem"), where="first diverging vision block: 2",
    ),
    Fault(
        "merger-weight", "split vision safetensors: one merger weight + 1e-3", "split",
        _merger_weight, ("vision: ", "max |Δ|", "tokens: ", "teacher-forced KL"),
        where="all vision blocks agree: the divergence starts in the merger",
    ),
    Fault(
        "swapped-window-index", "ONNX feeds: window_index entries 0 and −1 swapped", "onnx",
        _runtime(SwappedWindowIndex), ("vision: ", "max |Δ|"), where="first diverging vision block: 0",
        families=("qwen2_5_vl",),
    ),
    Fault(
        "wrong-vision-rotary-position-ids", "ONNX feeds: position_ids rows 0 and −1 swapped", "onnx",
        _runtime(SwappedPositionIds), ("vision: ", "max |Δ|"), where="first diverging vision block: 0",
    ),
    Fault(
        "wrong-lm-rotary-sections", "split LM config.json: M-RoPE sections t/h swapped", "split",
        lambda b, c: _split_copy(b, c, "language", lambda d: edit_json(
            d / "config.json", _swap_mrope_sections)),
        ("tokens: ", "teacher-forced KL"), where="first diverging decoder layer: 0",
        families=("qwen2_5_vl", "qwen2_vl"),
    ),
    Fault(
        "wrong-lm-rotary-sections-interleaved",
        "split LM config.json: M-RoPE h section one pair short ([6, 5, 5] → [7, 4, 5])", "split",
        lambda b, c: _split_copy(b, c, "language", lambda d: edit_json(
            d / "config.json", _shorten_mrope_height)),
        ("tokens: ", "teacher-forced KL"), where="first diverging decoder layer: 0", families=("qwen3_vl",),
    ),
    Fault(
        "stale-export", "source weight changed (1e-3), old ONNX export forced", "onnx", _stale_export,
        ("load: ArtefactError", "stale artefact"), changed_source=True,
    ),
    Fault(
        "stale-export-forged-hash", "as above, with the export's recorded source hash forged", "onnx",
        _stale_export_forged, ("vision: ", "max |Δ|"), where="first diverging vision block: 2", changed_source=True,
    ),
    Fault(
        "preprocessing-drift", "split preprocessor_config.json: resample bicubic → bilinear", "split",
        lambda b, c: _split_copy(b, c, "vision", lambda d: edit_json(
            d / "preprocessor_config.json", lambda config: config.update(resample=2))),
        ("vision: ", "max |Δ|"), where="the preprocessing drifted",
    ),
    Fault(
        "vision-quantized-by-mistake", "AWQ config: modules_to_not_convert = ['visual']", "awq",
        _awq_config(_quantize_vision_too),
        ("load: ArtefactError", "AWQ load:", "vision module(s) were loaded as AWQ layers"), needs_awq=True,
    ),
    Fault(
        "awq-scale-corrupted", "AWQ safetensors: layer-0 down_proj scales ×3 (Qwen2-VL ×30)", "awq", _awq_scales,
        ("tokens: weight error:", "layer 0"), where="largest hidden-state error growth at decoder layer 0",
        needs_awq=True,
    ),
    Fault(
        "nan-in-lm-weight", "split LM safetensors: one layer-1 MLP weight = NaN", "split",
        lambda b, c: _split_copy(b, c, "language", lambda d: edit_tensor(
            d / "model.safetensors", in_layer(1, "mlp"), set_first(float("nan")))),
        ("tokens: ", "NaN/Inf"), where="first diverging decoder layer: 1 (non-finite values",
    ),
    Fault(
        "lm-mlp-sign-flip", "split LM safetensors: layer-1 mlp.down_proj × −1 (changes easy-VQA answers)", "split",
        lambda b, c: _split_copy(b, c, "language", lambda d: edit_tensor(
            d / "model.safetensors", in_layer(1, "mlp.down_proj"), scale(-1.0))),
        ("tokens: ", "teacher-forced KL"), where="first diverging decoder layer: 1",
    ),
    Fault(
        "nan-in-vision-weight", "split vision safetensors: one block-1 MLP weight = NaN", "split",
        lambda b, c: _split_copy(b, c, "vision", lambda d: edit_tensor(
            d / "model.safetensors", in_block(1, "mlp"), set_first(float("nan")))),
        ("vision: ", "non-finite values"), where="first diverging vision block: 1",
    ),
    Fault(
        "image-token-count", "ONNX glue: one image token too few per image", "onnx", _runtime(OneTokenShort),
        ("vision: shape", "image token count", "tokens: image token count"),
    ),
    Fault(
        "ep-silent-cpu-fallback", "ORT: CUDA EP requested, every node ran on the CPU EP", "onnx",
        _runtime(SilentCpuFallback), ("run: ProviderFallbackError", "executed no node"),
    ),
    Fault(
        "vision-output-fp16-downcast", "ONNX glue: image embeddings rounded through float16", "onnx",
        _runtime(Fp16Embeddings), ("vision: ", "max |Δ|", "runtime problem"),
        where="all vision blocks agree: the divergence starts in the merger or the output reordering",
    ),
    Fault(
        "awq-wrong-group-size", "AWQ config: group_size halved", "awq", _awq_config(_halve_group_size),
        ("load: ArtefactError", "AWQ load: transformers could not load"), needs_awq=True,
    ),
    Fault(
        "qdq-block-scale-x4", "onnx-qdq graph: the block-2 MLP output projection's weight scale ×4", "onnx-qdq",
        _derived_onnx_copy("onnx-qdq", lambda m: scale_qdq_weight_scale(m, in_block(2, MLP_OUT), 4.0)),
        ("tensors: ", "(tensor_min_sqnr_db)", "(weight_min_sqnr_db)"), where="in block 2",
    ),
    Fault(
        "bf16-block-weight-x4", "onnx-bf16 graph: the block-2 MLP output projection's weight ×4", "onnx-bf16",
        _derived_onnx_copy("onnx-bf16", lambda m: scale_onnx_weight(m, in_block(2, MLP_OUT), 4.0)),
        ("tensors: ", "(tensor_min_sqnr_db)", "(weight_min_sqnr_db)"), where="in block 2",
    ),
    Fault(
        "awq-kernel-fault", "AWQ kernel: one linear's output ×1.05 (hook)", "awq", _awq_kernel_fault,
        ("tokens: kernel/format error",), where="largest hidden-state error growth at decoder layer 0 (",
        needs_awq=True,
    ),
]  # fmt: skip


def _genuine(name: str) -> Plant:
    return lambda _bench, context: PATHS[name](context)


CONTROLS = [
    Fault(f"genuine-{name}", "nothing (the genuine artefact)", name, _genuine(name), (), needs_awq=name == "awq")
    for name in ("split", "onnx", "onnx-bf16", "onnx-qdq", "awq")
]


@dataclass(frozen=True)
class Outcome:
    """What the gate said about one fault: every failing check's reasons (``"<check>: <reason>"``) or the refusal
    (``"<load|run>: <Error>: <message>"``), and each check's metrics."""

    failed: tuple[str, ...]  # the checks that failed ("vision", "tokens"), or the stage that refused ("load", "run")
    reasons: tuple[str, ...]
    metrics: dict[str, dict[str, Any]]

    @property
    def passed(self) -> bool:
        return not self.failed

    def says(self, text: str) -> bool:
        return any(text in reason for reason in self.reasons)


def _metrics_key(result: CheckResult) -> str:
    """``vision[0]``, ``deepstack_1[0]`` (each DeepStack level apart), ``tokens``."""
    name = result.series.get("output", result.check) if result.check == "deepstack" else result.check
    return name if result.image_index is None else f"{name}[{result.image_index}]"


def judge(fault: Fault, bench: Bench) -> Outcome:
    """Plant ``fault`` and judge it with a fresh session: vision (per image) and tokens, on ``SAMPLE``."""
    session = bench.session(fault.path, bench.changed_model if fault.changed_source else None)
    stage = "load"
    try:
        session.use_runner(fault.plant(bench, session.context))
        stage = "run"
        results = [*session.check_vision(fault.path, SAMPLE), session.check_tokens(fault.path, SAMPLE)]
        if session.has_tensor_table(fault.path):
            results.append(session.check_tensors(fault.path, SAMPLE))
    except VlparityError as exc:
        return Outcome((stage,), (f"{stage}: {type(exc).__name__}: {exc}",), {})
    failed = tuple(dict.fromkeys(result.check for result in results if not result.passed))
    reasons = tuple(f"{result.check}: {reason}" for result in results for reason in result.reasons)
    metrics = {_metrics_key(result): result.metrics for result in results}
    return Outcome(failed, reasons, metrics)


def bench_settings(model: str | None = None, cache_dir: Path = DEFAULT_CACHE_DIR) -> RunSettings:
    """CPU, float32, CPU EP, a few tokens: faults must be caught where CI runs."""
    return RunSettings(
        model=model, device="cpu", dtype="float32", max_new_tokens=MAX_NEW_TOKENS, cache_dir=cache_dir, ort=OrtOptions()
    )


# --- the docs table ---------------------------------------------------------------------------------------------------

# Phrases of the session's diagnosis lines (as opposed to the tolerance rules that tripped).
DIAGNOSES = (
    "first diverging",
    "blocks agree",
    "layer by layer",
    "drifted",
    "largest hidden",
    "onnx.reference",
    "LM head",
    "LM input",
    "tensors under",
)


def tripped(outcome: Outcome) -> str:
    """The measured numbers behind a verdict, compactly: what a reader checks against the tolerance."""
    if not outcome.metrics:  # a refusal: its message, without machine-specific paths
        first_sentence = re.split(r"\. (?=[A-Z])", outcome.reasons[0])[0]
        return re.sub(r"(?:/[\w.+-]+)+/([\w.+-]+)", r"…/\1", first_sentence)
    cells = []
    for check, metrics in outcome.metrics.items():
        if check.startswith(("vision", "deepstack")):
            cells.append(f"{check}: max |Δ| {metrics['max_abs_err']:.3g}, min cos {metrics['min_token_cosine']:.6f}")
        elif check == "tensors":
            cells.append(
                f"tensors: min SQNR {metrics['min_sqnr_db']:.1f} dB ({metrics['worst_location']}: "
                f"{metrics['worst_tensor']}), min weight SQNR {metrics['min_weight_sqnr_db']:.1f} dB"
            )
        else:
            kernel = metrics.get("kernel_max_abs_logit")
            extra = f", kernel |Δlogit| {kernel:.3g}" if kernel is not None else ""
            cells.append(f"{check}: KL max {metrics['kl_max']:.3g}, exact {metrics['exact']}{extra}")
    return "; ".join(cells)


def table(bench: Bench) -> str:
    model_type = bench.genuine.context.source.model_type
    rows = [
        "| fault | planted | path | expected | measured | measured metrics | location named |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fault in [*CONTROLS, *FAULTS]:
        if model_type not in fault.families or (fault.needs_awq and not HAS_AWQ):
            continue
        outcome = judge(fault, bench)
        texts = (*fault.stage, *filter(None, [fault.where]))
        expected = "fails: " + " + ".join(f"`{text}`" for text in texts) if texts else "passes"
        if outcome.passed:
            measured = "**passes**"
        else:
            measured = f"fails ({', '.join(outcome.failed)})" if outcome.metrics else f"refused at {outcome.failed[0]}"
        named = [r.split(": ", 1)[1] for r in outcome.reasons if outcome.metrics and any(d in r for d in DIAGNOSES)]
        where = "; ".join(named) or "—"
        cells = (fault.kind, fault.planted, fault.path, expected, measured, tripped(outcome), where)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint dir (default: the bundled Qwen2.5-VL fixture)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        bench = Bench(bench_settings(args.model, DEFAULT_CACHE_DIR.resolve()), Path(scratch))
        print(f"{resolve_model(args.model).reference}, sample {SAMPLE.sample_id}, {MAX_NEW_TOKENS} new tokens\n")
        print(table(bench))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
