"""Contracts for artefacts built outside vlparity (Olive / ORT-GenAI exports, Quark or hub AWQ checkpoints, a user's
own split). Each check runs before any model work and fails with an ``ArtefactContractError`` that names the file, what
was expected, what was found and the remedy: a misfit artefact is a usage problem (exit 2), not a parity failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vlparity.errors import ArtefactContractError
from vlparity.paths.base import PathContext
from vlparity.safe_paths import safe_join

IMAGE_EMBEDS = "image_embeds"
BLOCK_OUTPUT = re.compile(r"block_\d+")
# Two grids that differ in every size-dependent dimension: a dimension equal in both is fixed by the model config.
CONTRACT_GRIDS = ([[1, 16, 20], [1, 12, 28]], [[1, 2, 2]])
SPLIT_FILES = {
    "vision": ("config.json", "model.safetensors", "preprocessor_config.json"),
    "language": ("config.json", "model.safetensors", "generation_config.json", "tokenizer_config.json"),
}
REMEDY_VISION_EXCLUDED = '["model.visual", "lm_head"]'


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as far as feeding it goes: element type, rank and the dimensions that are fixed."""

    dtype: str
    rank: int
    fixed: dict[int, int]

    def __str__(self) -> str:
        dims = ", ".join(str(self.fixed.get(axis, "?")) for axis in range(self.rank))
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class OnnxVisionArtefact:
    """An external ONNX vision encoder that passed the contract."""

    path: Path
    data_files: tuple[Path, ...]
    block_outputs: int  # ``block_<i>`` outputs: 0 means no per-block diagnosis on a failure

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.path, *self.data_files)


@dataclass(frozen=True)
class AwqArtefact:
    """An external AWQ checkpoint that passed the contract."""

    directory: Path
    group_size: int
    bits: int


def _fail(subject: Path, option: str, problems: list[str], remedy: str) -> None:
    if problems:
        raise ArtefactContractError(f"{option} {subject}: {'; '.join(problems)}. {remedy}")


def _spec(array: np.ndarray, other: np.ndarray) -> TensorSpec:
    fixed = {
        axis: size for axis, (size, size_b) in enumerate(zip(array.shape, other.shape, strict=True)) if size == size_b
    }
    return TensorSpec(array.dtype.name, array.ndim, fixed)


def expected_vision_inputs(context: PathContext) -> dict[str, TensorSpec]:
    """What vlparity feeds a vision encoder of this model: ``pixel_values`` plus the adapter's index inputs."""
    vision_config = context.source_config().vision_config
    width = vision_config.in_channels * vision_config.temporal_patch_size * vision_config.patch_size**2
    feeds = []
    for grid in CONTRACT_GRIDS:
        grid_thw = torch.tensor(grid)
        pixels = np.zeros((int(grid_thw.prod(-1).sum()), width), np.float32)
        feeds.append({"pixel_values": pixels, **context.adapter.export_inputs(grid_thw, vision_config)})
    first, second = feeds
    return {name: _spec(first[name], second[name]) for name in first}


def _found_specs(values: list[dict[str, Any]]) -> dict[str, TensorSpec]:
    return {
        value["name"]: TensorSpec(
            value["dtype"],
            len(value["shape"]),
            {axis: dim for axis, dim in enumerate(value["shape"]) if isinstance(dim, int) and dim > 0},
        )
        for value in values
    }


def _spec_problems(name: str, expected: TensorSpec, found: TensorSpec) -> list[str]:
    if (found.dtype, found.rank) != (expected.dtype, expected.rank):
        return [f"{name} is {found}, expected {expected}"]
    problems = []
    for axis, size in found.fixed.items():
        if axis not in expected.fixed:
            problems.append(f"{name} dim {axis} is fixed at {size} but varies with the image size")
        elif size != expected.fixed[axis]:
            problems.append(f"{name} dim {axis} is {size}, expected {expected.fixed[axis]}")
    return problems


def _external_data_files(path: Path, model: Any) -> tuple[Path, ...]:
    """Every external-data file the model references, checked to exist and to be long enough."""
    from onnx import TensorProto

    needed: dict[Path, int] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        file = safe_join(path.parent, entries["location"], f"--onnx-vision {path}: external data location")
        needed[file] = max(needed.get(file, 0), int(entries.get("offset", 0)) + int(entries.get("length", 0)))
    missing = [f"{file.name} (missing)" for file in needed if not file.is_file()]
    short = [
        f"{file.name} ({file.stat().st_size} bytes, needs {size})"
        for file, size in needed.items()
        if file.is_file() and file.stat().st_size < size
    ]
    unusable = [f"external weight data unusable: {', '.join(missing + short)}"] if missing or short else []
    _fail(
        path, "--onnx-vision", unusable,
        "Copy the external data file(s) next to the .onnx file under the name(s) the model references, or re-save "
        "the model with its weights inside (onnx.save(model, path, save_as_external_data=False)).",
    )  # fmt: skip
    return tuple(needed)


def check_onnx_vision(path: Path, context: PathContext) -> OnnxVisionArtefact:
    """An external ONNX vision encoder: loadable, ``onnx.checker``-valid, complete, and feedable the way vlparity
    feeds its own export (input names/dtypes/ranks/fixed dims; ``image_embeds`` of the LM's hidden width)."""
    import onnx

    from vlparity.export.onnx_vision import input_contract

    if not path.is_file():
        raise ArtefactContractError(f"--onnx-vision {path}: no such file. Pass the .onnx model file itself.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError …
        raise ArtefactContractError(
            f"--onnx-vision {path}: not an ONNX model ({type(exc).__name__}: {exc}). The file is truncated or not "
            "ONNX: copy it again completely, or re-export it."
        ) from exc
    data_files = _external_data_files(path, model)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        message = str(exc).strip().splitlines()[0][:300]
        raise ArtefactContractError(
            f"--onnx-vision {path}: onnx.checker rejects the model ({type(exc).__name__}: {message}). "
            "Fix or re-export it; vlparity judges only models that pass the ONNX checker."
        ) from exc
    initializers = {tensor.name for tensor in model.graph.initializer}
    contract = input_contract(model)
    found = _found_specs([value for value in contract["inputs"] if value["name"] not in initializers])
    expected = expected_vision_inputs(context)
    problems = [
        f"input {name} {spec} is not one vlparity can feed" for name, spec in found.items() if name not in expected
    ]
    if "pixel_values" not in found:
        problems.append("no pixel_values input")
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    if metadata.get("model_type", context.source.model_type) != context.source.model_type:
        problems.insert(
            0, f"it was exported from a {metadata['model_type']} model, --model is {context.source.model_type}"
        )
    for name in found.keys() & expected.keys():
        problems.extend(_spec_problems(name, expected[name], found[name]))
    listing = (
        f"Expected inputs (vlparity feeds these; the index inputs may be omitted): "
        f"{', '.join(f'{name} {spec}' for name, spec in expected.items())}; "
        f"found: {', '.join(f'{name} {spec}' for name, spec in found.items())}."
    )
    _fail(
        path, "--onnx-vision", problems, f"{listing} Rename or re-export the inputs (vlparity export-onnx writes them)."
    )
    outputs = _found_specs(contract["outputs"])
    source_config = context.source_config()
    hidden = source_config.text_config.hidden_size
    expected_output = TensorSpec("float32", 2, {1: hidden})
    needed = context.adapter.feature_outputs(source_config.vision_config)
    missing = [name for name in needed if name not in outputs]
    problems = [f"no output named {', '.join(missing)} (found: {', '.join(outputs) or 'none'})"] if missing else []
    for name in needed:
        if name in outputs:
            problems.extend(_spec_problems(name, expected_output, outputs[name]))
    deepstack = (
        f" A {context.source.model_type} LM also adds the DeepStack features ({', '.join(needed[1:])}: each level's "
        "merged tokens, same layout) after its first decoder layers; an export without them cannot feed it."
        if len(needed) > 1 else ""
    )  # fmt: skip
    _fail(
        path, "--onnx-vision", problems,
        f"vlparity reads {IMAGE_EMBEDS} {expected_output}: every image's merged tokens at the language model's hidden "
        f"size ({hidden}), images concatenated.{deepstack} Rename the outputs or re-export (vlparity export-onnx "
        "writes them).",
    )  # fmt: skip
    blocks = sum(1 for name in outputs if BLOCK_OUTPUT.fullmatch(name))
    return OnnxVisionArtefact(path=path, data_files=data_files, block_outputs=blocks)


def _read_config(path: Path, option: str, remedy: str) -> dict[str, Any]:
    if not path.is_file():
        raise ArtefactContractError(f"{option} {path.parent}: no {path.name}. {remedy}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtefactContractError(f"{option} {path}: not valid JSON ({exc}).") from exc


def _architecture_problems(config: dict[str, Any], context: PathContext) -> list[str]:
    """model_type and the language model's dimensions must equal those of ``--model``."""
    source = context.source.config
    problems = []
    if config.get("model_type") != source.get("model_type"):
        problems.append(f"model_type is {config.get('model_type')!r}, --model is {source.get('model_type')!r}")
    text, source_text = config.get("text_config", config), source.get("text_config", source)
    for key in ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"):
        if text.get(key) != source_text.get(key):
            problems.append(f"text {key} is {text.get(key)}, --model has {source_text.get(key)}")
    return problems


def check_awq_dir(directory: Path, context: PathContext) -> AwqArtefact:
    """An external AWQ checkpoint (AutoAWQ, Quark, hub): 4-bit GEMM AWQ of this model's LM, vision tower excluded
    under transformers' module matching (AutoAWQ's ``["visual"]`` silently quantizes it)."""
    from transformers.quantizers.quantizers_utils import should_convert_module

    from vlparity.quantize.awq import language_linears

    option = "--awq-model"
    config = _read_config(directory / "config.json", option, "Pass the checkpoint directory (with config.json).")
    quant = config.get("quantization_config")
    if not isinstance(quant, dict):
        raise ArtefactContractError(
            f"{option} {directory}: config.json has no quantization_config; this is not a quantized checkpoint. "
            "Run vlparity quantize-awq, or pass an AWQ checkpoint."
        )
    problems = _architecture_problems(config, context)
    method, bits = quant.get("quant_method"), quant.get("bits", quant.get("w_bit"))
    group_size, version = quant.get("group_size", quant.get("q_group_size")), str(quant.get("version", "gemm"))
    if method != "awq":
        problems.append(f"quantization_config.quant_method is {method!r}, expected 'awq'")
    if bits != 4:
        problems.append(f"quantization_config.bits is {bits!r}, expected 4")
    if version.lower() != "gemm":
        problems.append(f"quantization_config.version is {version!r}, expected 'gemm' (the packing vlparity unpacks)")
    model = context.skeleton()
    if not isinstance(group_size, int) or group_size <= 0:
        problems.append(f"quantization_config.group_size is {group_size!r}, expected a positive integer")
    else:
        linears = language_linears(model).items()
        bad = [f"{name} ({linear.in_features})" for name, linear in linears if linear.in_features % group_size]
        if bad:
            problems.append(f"group_size {group_size} does not divide the in-features of {', '.join(bad[:3])}")
    skip = quant.get("modules_to_not_convert") or []
    prefix = context.adapter.vision_prefix
    vision = [
        name for name, module in model.named_modules() if isinstance(module, nn.Linear) and name.startswith(prefix)
    ]
    converted = [name for name in vision if should_convert_module(name, skip)]
    if converted:
        problems.append(
            f"quantization_config.modules_to_not_convert {skip} does not exclude the vision tower under transformers' "
            f"module matching ({len(converted)} vision linear(s) would load as empty AWQ layers, e.g. {converted[0]}); "
            f"set it to {REMEDY_VISION_EXCLUDED}"
        )
    if not sorted(directory.glob("*.safetensors")):
        problems.append("no *.safetensors weights")
    _fail(directory, option, problems, "Fix config.json or re-quantize with vlparity quantize-awq.")
    _fail(
        directory, option, foreign_parts(directory, context),
        "vlparity judges only the language model's weights in --awq-model and runs --model's vision tower, processor, "
        "tokenizer, chat template and generation config with it, so a different one would pass unjudged. Copy the "
        "file(s) named from --model into the folder (or delete them there), or pass the --model they belong to.",
    )  # fmt: skip
    return AwqArtefact(directory=directory, group_size=int(group_size), bits=int(bits))


# The parts of a checkpoint folder besides the LM weights, and the files that carry each (to name them).
PART_FILES = {
    "processor": ("preprocessor_config.json", "processor_config.json"),
    "tokenizer": ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"),
    "chat template": ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"),
}
GENERATION_FILE = "generation_config.json"


def _present(directory: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if (directory / name).is_file()]


def _vision_tensors(directory: Path) -> dict[str, tuple[Path, str]]:
    """Vision tower tensors by name from ``visual.`` on (whatever prefix the checkpoint writes) → (file, key)."""
    from safetensors import safe_open

    found = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key.startswith(("visual.", "model.visual.")):
                    found[key[key.index("visual.") :]] = (path, key)
    return found


def _vision_weight_problems(directory: Path, source: Path) -> list[str]:
    """Every vision tensor the folder holds must be --model's cast to the folder's dtype (a float16 copy of a
    bfloat16 source holds the same weights; any other change does not)."""
    from safetensors import safe_open

    expected, found = _vision_tensors(source), _vision_tensors(directory)
    differing = []
    for name in sorted(found.keys() & expected.keys()):
        (path, key), (source_path, source_key) = found[name], expected[name]
        with safe_open(path, framework="pt") as handle, safe_open(source_path, framework="pt") as source_handle:
            tensor, reference = handle.get_tensor(key), source_handle.get_tensor(source_key)
        if tensor.shape != reference.shape or not torch.equal(tensor, reference.to(tensor.dtype)):
            differing.append(f"{path.name}: {key}")
    problems = []
    if differing:
        problems.append(
            f"{len(differing)} of its {len(found)} vision tensors differ from --model's ({', '.join(differing[:2])})"
        )
    unknown = sorted(found.keys() - expected.keys())
    if unknown:
        problems.append(f"it has vision tensors --model has not ({', '.join(unknown[:2])})")
    return problems


def _text_parts(directory: Path, trust_remote_code: bool) -> dict[str, Any]:
    """What a deployment of the folder would preprocess and prompt with, for the parts it ships: image processor
    settings, tokenizer (vocabulary, merges, added and special tokens), chat template."""
    from transformers import AutoImageProcessor, AutoTokenizer

    parts: dict[str, Any] = {}
    try:
        if _present(directory, PART_FILES["processor"]):
            processor = AutoImageProcessor.from_pretrained(directory, trust_remote_code=trust_remote_code)
            parts["processor"] = processor.to_dict()
        if _present(directory, PART_FILES["tokenizer"] + PART_FILES["chat template"]):
            tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=trust_remote_code)
            parts["tokenizer"] = (tokenizer.backend_tokenizer.to_str(), tokenizer.special_tokens_map)
            parts["chat template"] = tokenizer.chat_template
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ArtefactContractError(
            f"--awq-model {directory}: its processor or tokenizer files do not load "
            f"({str(exc).splitlines()[0][:200]}). Copy them from --model, or delete them from the folder."
        ) from exc
    return parts


def _generation_config(directory: Path, trust_remote_code: bool) -> dict[str, Any] | None:
    from transformers import GenerationConfig

    if not (directory / GENERATION_FILE).is_file():
        return None
    try:
        config = GenerationConfig.from_pretrained(directory, trust_remote_code=trust_remote_code).to_dict()
    except (OSError, ValueError) as exc:
        raise ArtefactContractError(f"--awq-model {directory / GENERATION_FILE}: not loadable ({exc}).") from exc
    config.pop("transformers_version", None)
    return config


def _shown(config: dict[str, Any], key: str) -> str:
    return "unset" if config.get(key) is None else repr(config[key])


def foreign_parts(directory: Path, context: PathContext) -> list[str]:
    """The parts of an AWQ folder besides its LM weights that differ from ``--model``'s, each with its file(s). A
    part the folder does not ship is not compared: the path runs ``--model``'s."""
    source = context.source.directory
    problems = _vision_weight_problems(directory, source)
    found = _text_parts(directory, context.trust_remote_code)
    expected = _text_parts(source, context.trust_remote_code) if found else {}
    problems += [
        f"its {part} ({', '.join(_present(directory, PART_FILES[part]))}) differs from --model's"
        for part, value in found.items()
        if value != expected.get(part)
    ]
    generation = _generation_config(directory, context.trust_remote_code)
    if generation is not None:
        reference = _generation_config(source, context.trust_remote_code) or {}
        changed = sorted(
            key for key in generation.keys() | reference.keys() if generation.get(key) != reference.get(key)
        )
        if changed:
            fields = ", ".join(
                f"{key} {_shown(generation, key)} (--model: {_shown(reference, key)})" for key in changed[:4]
            )
            problems.append(f"its generation config ({GENERATION_FILE}) differs from --model's: {fields}")
    return problems


def _shape_problems(weights: Path, expected: dict[str, torch.Size], allowed_missing: set[str]) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(weights, framework="pt") as handle:
            found = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # SafetensorError, OSError: a truncated or foreign file
        return [f"{weights.parent.name}/{weights.name} is not a readable safetensors file ({exc})"]
    missing = sorted(expected.keys() - found.keys() - allowed_missing)
    unexpected = sorted(found.keys() - expected.keys())
    wrong = [
        f"{key} {list(found[key])} (expected {list(expected[key])})"
        for key in sorted(expected.keys() & found.keys())
        if found[key] != tuple(expected[key])
    ]
    problems = []
    if missing:
        problems.append(f"{weights.parent.name}/{weights.name} lacks {len(missing)} tensor(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(
            f"{weights.parent.name}/{weights.name} has {len(unexpected)} unknown tensor(s), e.g. {unexpected[:3]}"
        )
    if wrong:
        problems.append(
            f"{weights.parent.name}/{weights.name} has {len(wrong)} wrongly shaped tensor(s), e.g. {wrong[:2]}"
        )
    return problems


def check_split_dir(directory: Path, context: PathContext) -> Path:
    """A split made elsewhere: vlparity's layout (``vision/`` + ``language/``, see ``export.split``) with tensors
    named and shaped as the ``--model`` architecture says."""
    option = "--split-dir"
    layout = "; ".join(f"{part}/: {', '.join(files)}" for part, files in SPLIT_FILES.items())
    if not directory.is_dir():
        raise ArtefactContractError(f"{option} {directory}: no such directory. Expected the layout {layout}.")
    missing = [
        f"{part}/{name}"
        for part, files in SPLIT_FILES.items()
        for name in files
        if not (directory / part / name).is_file()
    ]
    _fail(directory, option, [f"missing {', '.join(missing)}"] if missing else [], f"Expected the layout {layout}.")
    config = _read_config(directory / "language" / "config.json", option, "")
    problems = _architecture_problems(config, context)
    if not problems:
        model = context.skeleton()
        prefix = context.adapter.vision_prefix
        state = {key: tensor.shape for key, tensor in model.state_dict().items()}
        language = {key: shape for key, shape in state.items() if not key.startswith(prefix)}
        vision = {key[len(prefix) :]: shape for key, shape in state.items() if key.startswith(prefix)}
        tied = {"lm_head.weight"} if config.get("tie_word_embeddings") else set()
        problems = _shape_problems(directory / "language" / "model.safetensors", language, tied)
        problems += _shape_problems(directory / "vision" / "model.safetensors", vision, set())
    _fail(directory, option, problems, "Re-split from --model (vlparity split writes this layout).")
    return directory
