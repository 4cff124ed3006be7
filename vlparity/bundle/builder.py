"""Assemble a bundle from the cached artefacts: the fp32 ONNX export, and the split LM or the AWQ checkpoint.

Nothing is re-derived here: the vision half is the very ``vision.onnx`` the ``onnx`` path runs, the language half the
very weights the ``onnx`` (or ``awq+onnx``) path loads, so the bundle's scripts can be held to those paths' results.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vlparity.adapters import FamilyAdapter
from vlparity.bundle.preprocess import preprocess_config
from vlparity.bundle.readme import (
    LANGUAGE_SCRIPT,
    VISION_SCRIPT,
    BundleFacts,
    language_requirements,
    render_readme,
    vision_requirements,
)
from vlparity.errors import UsageError
from vlparity.export.onnx_vision import MODEL_NAME, ExportSettings
from vlparity.export.split import SPLIT_KIND, WEIGHTS_NAME, write_split
from vlparity.manifest import MANIFEST_NAME, verify_manifest, write_artefact
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import ONNX_KIND, build_onnx_vision
from vlparity.paths.split import split_cache_dir
from vlparity.safe_paths import safe_join

BUNDLE_KIND = "bundle"
TEMPLATES_DIR = Path(__file__).resolve().with_name("templates")
PREPROCESS_NAME = "preprocess.json"
# Processor files the language half does not need: it never sees pixels.
NOT_FOR_LANGUAGE = {
    MANIFEST_NAME,
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
}


def check_output_dir(output_dir: Path) -> None:
    """A bundle never lands on top of existing files: refuse a file or a non-empty directory, before any work."""
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        what = "is a file" if not output_dir.is_dir() else "already exists and is not empty"
        raise UsageError(
            f"--output-dir {output_dir}: {what}. Pass a new (or empty) directory, or delete this one first; "
            "a bundle is never written over existing files."
        )


def build_bundle(context: PathContext, output_dir: Path, *, quantize: bool = False) -> Path:
    """Write the bundle for ``context``'s model to ``output_dir`` atomically and return it.

    ``quantize``: the language half is the AWQ int4 checkpoint (built and cached like the ``awq`` path's) instead of
    the split safetensors LM.
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir)
    onnx_dir = build_onnx_vision(context, ExportSettings("fp32"))
    verify_manifest(onnx_dir, ONNX_KIND)
    language_dir, language_manifest = _language_source(context, quantize)
    facts = BundleFacts(
        source_model=context.source.reference,
        model_type=context.source.model_type,
        quantized=quantize,
        language_dtype="float16 (AWQ int4 weights)" if quantize else str(language_manifest.get("dtype")),
    )

    def build(tmp: Path) -> dict[str, Any]:
        write_vision(context, onnx_dir, tmp / "vision")
        write_language(context.adapter, language_dir, tmp / "language", quantize)
        (tmp / "README.md").write_text(render_readme(facts))
        return {
            "source_model": context.source.reference,
            "source_sha256": context.source.content_hash(),
            "model_type": context.source.model_type,
            "quantized": quantize,
            "language_dtype": facts.language_dtype,
            # The cached artefacts copied, relative to the cache: absolute paths would leak into shipped bundles.
            "vision_from": onnx_dir.relative_to(context.cache_dir).as_posix(),
            "language_from": language_dir.relative_to(context.cache_dir).as_posix(),
        }

    return write_artefact(output_dir, BUNDLE_KIND, build)


def _language_source(context: PathContext, quantize: bool) -> tuple[Path, dict[str, Any]]:
    """The checkpoint directory the language half is copied from, and its verified manifest."""
    if quantize:
        from vlparity.paths.awq import AWQ_KIND, build_awq
        from vlparity.quantize.awq import AwqSettings

        awq_dir = build_awq(context, AwqSettings())
        return awq_dir, verify_manifest(awq_dir, AWQ_KIND)
    split_dir = split_cache_dir(context)
    if not split_dir.exists():
        from vlparity.paths.original import load_original

        model, processor = load_original(context)
        write_split(model, processor, context.adapter, context.source, split_dir)
        del model
    return split_dir / "language", verify_manifest(split_dir, SPLIT_KIND)


def write_vision(context: PathContext, onnx_dir: Path, vision_dir: Path) -> None:
    """``vision.onnx`` (and its external data, if any), ``preprocess.json``, the script and its requirements."""
    import onnx
    from transformers import AutoImageProcessor

    vision_dir.mkdir(parents=True)
    for path in sorted(onnx_dir.glob(f"{MODEL_NAME}*")):
        shutil.copyfile(*_copy_pair(onnx_dir, path.name, vision_dir))
    graph = onnx.load(str(onnx_dir / MODEL_NAME), load_external_data=False).graph
    image_processor = AutoImageProcessor.from_pretrained(
        context.source.directory, trust_remote_code=context.trust_remote_code
    )
    config = preprocess_config(image_processor, context.source.config["vision_config"], [i.name for i in graph.input])
    (vision_dir / PREPROCESS_NAME).write_text(json.dumps(config, indent=2) + "\n")
    shutil.copyfile(TEMPLATES_DIR / VISION_SCRIPT, vision_dir / VISION_SCRIPT)
    (vision_dir / "requirements.txt").write_text("\n".join(vision_requirements()) + "\n")


def write_language(adapter: FamilyAdapter, source_dir: Path, language_dir: Path, quantized: bool) -> None:
    """Config, generation config, tokenizer, chat template and weights without a single vision tensor."""
    language_dir.mkdir(parents=True)
    for path in sorted(source_dir.iterdir()):
        if not path.is_file() or path.name in NOT_FOR_LANGUAGE:
            continue
        source, target = _copy_pair(source_dir, path.name, language_dir)
        if path.suffix == ".safetensors":
            _copy_without_vision(source, target, adapter.vision_prefix)
        elif path.name.endswith(".safetensors.index.json"):
            _index_without_vision(source, target, adapter.vision_prefix)
        else:
            shutil.copyfile(source, target)
    if not quantized and not (language_dir / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{source_dir}: no {WEIGHTS_NAME}; the split artefact is incomplete")
    shutil.copyfile(TEMPLATES_DIR / LANGUAGE_SCRIPT, language_dir / LANGUAGE_SCRIPT)
    (language_dir / "requirements.txt").write_text("\n".join(language_requirements(quantized)) + "\n")


def _copy_pair(source_dir: Path, name: str, target_dir: Path) -> tuple[Path, Path]:
    """Where a file of a cached artefact is read from and written to: both inside their directories (a symlink in the
    artefact that leads out would copy a foreign file into a bundle meant to be shipped)."""
    what = f"bundle: file of {source_dir}"
    return safe_join(source_dir, name, what), safe_join(target_dir, name, what)


def _copy_without_vision(source: Path, target: Path, vision_prefix: str) -> None:
    """Copy a safetensors file, dropping ``vision_prefix`` tensors (the AWQ checkpoint keeps the whole model)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(source, framework="pt") as handle:
        keys = [key for key in handle.keys() if not key.startswith(vision_prefix)]  # noqa: SIM118 - not a mapping
        if len(keys) == len(handle.keys()):
            shutil.copyfile(source, target)
            return
        tensors = {key: handle.get_tensor(key) for key in keys}
        metadata = handle.metadata()
    save_file(tensors, target, metadata=metadata)


def _index_without_vision(source: Path, target: Path, vision_prefix: str) -> None:
    index = json.loads(source.read_text())
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if not k.startswith(vision_prefix)}
    target.write_text(json.dumps(index, indent=2) + "\n")
