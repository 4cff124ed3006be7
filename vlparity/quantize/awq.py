"""AWQ int4 quantization of the language model only (AutoAWQ), saved in the standard AWQ checkpoint format, loaded back
through transformers (gptqmodel kernels), and checked after every load for the silent failure modes we know.

Artefact layout: a Hugging Face checkpoint (``config.json`` with ``quantization_config.quant_method == "awq"``,
``model.safetensors`` with ``qweight``/``qzeros``/``scales`` for each LM linear, unquantized vision tower and
``lm_head``), tokenizer and processor files, and ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from vlparity.errors import ArtefactError, UsageError
from vlparity.model_source import FIXTURES_DIR
from vlparity.progress import library_output_logged
from vlparity.quantize.awq_compat import MODULES_TO_NOT_CONVERT, awq_class_for, import_autoawq

log = logging.getLogger(__name__)

DEFAULT_GROUP_SIZE = 128
CALIBRATION_FILE = FIXTURES_DIR / "calibration.json"
GENERATION_CONFIG = "generation_config.json"


@dataclass(frozen=True)
class AwqSettings:
    group_size: int = DEFAULT_GROUP_SIZE
    bits: int = 4
    zero_point: bool = True
    version: str = "GEMM"
    calibration_file: Path = CALIBRATION_FILE
    max_calib_seq_len: int = 64
    # AutoAWQ's weight-clipping search: part of AWQ's accuracy, but elementwise and memory-bound (> 30 min for one
    # real-size layer on 2 CPU cores). The real-size benchmarks turn it off: random weights, same format and kernels.
    apply_clip: bool = True

    def quant_config(self) -> dict[str, Any]:
        return {
            "zero_point": self.zero_point,
            "q_group_size": self.group_size,
            "w_bit": self.bits,
            "version": self.version,
        }


def language_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The linears AWQ quantizes: every ``nn.Linear`` of the decoder layers (not the vision tower, not lm_head)."""
    layers = model.model.language_model.layers
    return {
        f"model.language_model.layers.{index}.{name}": module
        for index, layer in enumerate(layers)
        for name, module in layer.named_modules()
        if isinstance(module, nn.Linear)
    }


CLIP_BATCH = 64  # AutoAWQ's clip search walks out-features in batches of 64 and asserts they divide them
CLIP_SKIPPED = ("q_", "k_")  # what AutoAWQ's clip search leaves out (its avoid_clipping list, Qwen names)


def check_quantizable(model: nn.Module, group_size: int, apply_clip: bool = True) -> None:
    """Refuse, before any work, dimensions the AWQ GEMM format cannot hold (in-features not divisible by the group
    size, out-features not divisible by the 8 nibbles packed into an int32), and with ``apply_clip`` those AutoAWQ's
    clip search dies on with a bare AssertionError (out-features not a multiple of 64, e.g. v_proj of a model with
    one 32-wide KV head)."""
    if group_size <= 0 or group_size % 32:
        raise UsageError(
            f"--group-size {group_size}: must be a positive multiple of 32 (AWQ kernels use 32-wide tiles)."
        )
    bad = [
        f"{name} ({linear.in_features}→{linear.out_features})"
        for name, linear in language_linears(model).items()
        if linear.in_features % group_size or linear.out_features % 8
    ]
    if bad:
        raise UsageError(
            f"--group-size {group_size} does not divide the in-features of {len(bad)} LM linear(s), e.g. "
            f"{', '.join(bad[:3])}. Choose a group size that divides them (e.g. 64 or 32)."
        )
    narrow = [
        f"{name} ({linear.in_features}→{linear.out_features})"
        for name, linear in language_linears(model).items()
        if apply_clip and linear.out_features % CLIP_BATCH and not name.rsplit(".", 1)[-1].startswith(CLIP_SKIPPED)
    ]
    if narrow:
        raise UsageError(
            f"AWQ: AutoAWQ's clip search needs out-features in multiples of {CLIP_BATCH}; {len(narrow)} LM linear(s) "
            f"are not, e.g. {', '.join(narrow[:3])}. This language model cannot be quantized with AutoAWQ."
        )


def calibration_texts(path: Path) -> list[str]:
    """Chat-formatted calibration conversations shipped with the project (no dataset download)."""
    try:
        texts = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--calib-file {path}: not a readable JSON list of strings ({exc}).") from exc
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise UsageError(f"--calib-file {path}: expected a non-empty JSON list of strings.")
    return texts


def quantize_to(
    model: nn.Module, processor: Any, model_type: str, settings: AwqSettings, out_dir: Path, source_dir: Path
) -> None:
    """Quantize ``model`` (float32, CPU; modified in place) with AutoAWQ and save it to ``out_dir``, with
    ``source_dir``'s generation config unchanged."""
    import_autoawq()
    from awq.models._config import AwqConfig

    check_quantizable(model, settings.group_size, settings.apply_clip)
    texts = calibration_texts(settings.calibration_file)
    awq_cls = awq_class_for(model_type)
    awq_model = awq_cls(
        model, model_type, is_quantized=False, config=model.config,
        quant_config=AwqConfig.from_dict(settings.quant_config()), processor=processor,
    )  # fmt: skip
    started = time.perf_counter()
    log.info("AWQ: quantizing %d LM linears (group size %d)…", len(language_linears(model)), settings.group_size)
    awq_model.quantize(
        processor.tokenizer,
        quant_config=settings.quant_config(),
        calib_data=texts,
        max_calib_seq_len=settings.max_calib_seq_len,
        max_calib_samples=len(texts),
        apply_clip=settings.apply_clip,
    )
    log.info("AWQ: quantized in %.0f s", time.perf_counter() - started)
    awq_model.save_quantized(str(out_dir))
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"]["modules_to_not_convert"] = MODULES_TO_NOT_CONVERT
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    processor.save_pretrained(out_dir)
    keep_source_generation_config(source_dir, out_dir)


def keep_source_generation_config(source_dir: Path, out_dir: Path) -> None:
    """AutoAWQ's ``save_quantized`` sets ``do_sample = True`` before saving: a deployment would then sample where the
    source decodes greedily. Write the source's file byte for byte instead (none if the source has none)."""
    source, written = source_dir / GENERATION_CONFIG, out_dir / GENERATION_CONFIG
    if source.is_file():
        shutil.copyfile(source, written)
    else:
        written.unlink(missing_ok=True)


def load_awq(
    directory: Path,
    device: torch.device,
    dtype: torch.dtype = torch.float16,
    *,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    gemm_activations: torch.dtype | None = None,
) -> nn.Module:
    """Load an AWQ checkpoint through transformers (gptqmodel kernels) on ``device`` (or placed over the visible
    devices by accelerate's ``device_map`` strategy) and assert it is sane. ``gemm_activations``: see
    ``cast_int4_gemm_activations``."""
    from transformers import AutoModelForImageTextToText

    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(os.cpu_count() or 1))
    # Without CUDA the whole LM stays on the CPU: gptqmodel picks a GPU (Triton) kernel for any accelerate strategy.
    placement = device_map if device_map and torch.cuda.is_available() else str(device)
    try:  # gptqmodel prints an import banner and its kernel choice: into the log, not the user's terminal
        with library_output_logged(f"loading the AWQ checkpoint {directory.name}"):
            model = AutoModelForImageTextToText.from_pretrained(
                directory, dtype=dtype, device_map=placement, use_safetensors=True,
                trust_remote_code=trust_remote_code,
            ).eval()  # fmt: skip
    except (RuntimeError, ValueError, OSError) as exc:
        raise ArtefactError(
            f"AWQ load: transformers could not load {directory} ({str(exc).splitlines()[0][:200]}). The packed "
            "tensors disagree with quantization_config (e.g. a wrong group_size or bits) or the files are damaged."
        ) from exc
    if gemm_activations is not None:
        cast_int4_gemm_activations(model, gemm_activations)
    assert_awq_sane(model, directory)
    return model


def cast_int4_gemm_activations(model: nn.Module, dtype: torch.dtype) -> None:
    """Feed every AWQ linear ``dtype`` activations and hand its output back in the model's dtype (forward hooks).

    Why: on CPU, gptqmodel's int4 GEMM (``aten._weight_int4pack_mm_for_cpu``) is fast only for bfloat16 activations:
    measured on this AVX2 machine at 2048×11008, one token: bf16 1.9 ms, fp16 26 ms, a dense fp32 linear 6.6 ms. A
    float32 model with bf16 GEMM inputs keeps norms, attention and lm_head in fp32. Must run before the first forward:
    the kernel picks its mode on its first call."""
    model_dtype = next(model.parameters()).dtype
    for name in quantized_modules(model):
        module = model.get_submodule(name)
        module.register_forward_pre_hook(lambda _module, args: (args[0].to(dtype), *args[1:]))
        module.register_forward_hook(lambda _module, _args, output: output.to(model_dtype))


def quantized_modules(model: nn.Module) -> list[str]:
    """Names of modules that hold packed AWQ weights (any kernel class: they all carry ``qweight``)."""
    return [name for name, module in model.named_modules() if hasattr(module, "qweight")]


def assert_awq_sane(model: nn.Module, directory: Path) -> None:
    """The checks that catch the silent failures: no vision module quantized, every LM linear quantized, lm_head in
    floating point, finite logits on a probe input."""
    quantized = quantized_modules(model)
    vision = [name for name in quantized if ".visual." in f".{name}."]
    if vision:
        raise ArtefactError(
            f"AWQ load: {directory}: {len(vision)} vision module(s) were loaded as AWQ layers (e.g. {vision[0]}): the "
            "checkpoint's quantization_config.modules_to_not_convert does not exclude the vision tower under "
            f"transformers 5's prefix matching. Set it to {MODULES_TO_NOT_CONVERT} and reload."
        )
    if "lm_head" in quantized:
        raise ArtefactError(
            f"AWQ load: {directory}: lm_head was loaded as an AWQ layer; it must stay in floating point."
        )
    if not any(".language_model.layers." in name for name in quantized):
        raise ArtefactError(f"AWQ load: {directory}: no language-model layer is quantized; not an AWQ LM checkpoint.")
    probe = torch.arange(1, 9, device=model.device)[None]
    with torch.inference_mode():
        logits = model(input_ids=probe).logits
    if not torch.isfinite(logits).all():
        raise ArtefactError(
            f"AWQ load: {directory}: non-finite logits on a probe input (scales, zeros or packing are "
            "corrupt, or a module was quantized that should not be)."
        )


def dequantized_state_dict(directory: Path, group_size: int, bits: int = 4) -> dict[str, torch.Tensor]:
    """The checkpoint with every AWQ linear unpacked to a float32 ``weight`` (the AWQ-scaled norms are already
    ordinary weights in it): the reference that separates kernel/format errors from quantization error."""
    import_autoawq()
    from awq.utils.packing_utils import dequantize_gemm

    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[key] = handle.get_tensor(key)
    for key in [k for k in tensors if k.endswith(".qweight")]:
        prefix = key[: -len(".qweight")]
        weight = dequantize_gemm(
            tensors.pop(f"{prefix}.qweight"), tensors.pop(f"{prefix}.qzeros"), tensors.pop(f"{prefix}.scales").float(),
            bits, group_size,
        )  # fmt: skip
        tensors[f"{prefix}.weight"] = weight.T.contiguous().float()
    return {key: value.float() if value.is_floating_point() else value for key, value in tensors.items()}
