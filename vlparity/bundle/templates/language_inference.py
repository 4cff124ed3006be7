"""Standalone Qwen VL language model: image embeddings from ``vision_inference.py`` + a prompt -> greedy tokens.

Needs only torch and transformers (and gptqmodel when the checkpoint is AWQ). The vision tower is never built: the
model skeleton is created on the ``meta`` device, its vision tower is replaced by a stub that refuses to run, and only
the language weights are loaded. The image embeddings enter through ``mm_encoder_outputs``; transformers scatters them
into the ``<|image_pad|>`` positions and derives the 3-D (temporal, height, width) rotary positions from
``image_grid_thw`` and ``mm_token_type_ids`` (``get_rope_index``), exactly as when the processor prepared the inputs.

Usage::

    python language_inference.py --vision-output out/ --prompt "What is in the image?" --max-new-tokens 32

Prints the generated text; ``--output tokens.json`` also writes the prompt token ids and the generated token ids.
Without ``--vision-output`` the prompt is text only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, GenerationConfig
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import load_state_dict

HERE = Path(__file__).resolve().parent
WEIGHTS_NAME = "model.safetensors"
AWQ_DTYPE = torch.float16  # the dtype transformers' AWQ kernels (gptqmodel) run in, on CPU and CUDA


class VisionTowerRemoved(torch.nn.Module):
    """Stands in for the vision tower: holds no weights, refuses to run."""

    def forward(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("the language model was asked to run its vision tower; pass mm_encoder_outputs")


def _model_class(config: transformers.PretrainedConfig) -> type[torch.nn.Module]:
    return getattr(transformers, config.architectures[0])


def _rebuild_buffers(model: torch.nn.Module, device: torch.device) -> None:
    """Non-persistent buffers (rotary ``inv_freq``) are not in checkpoints: rebuild their modules from config."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if any(buffer.is_meta for buffer in child.buffers(recurse=False)):
                with torch.device(device):
                    setattr(parent, name, type(child)(child.config))


def load_float_model(directory: Path, device: torch.device, attn_implementation: str) -> torch.nn.Module:
    """The language model from a vision-free safetensors checkpoint, weights kept in their saved dtype."""
    config = AutoConfig.from_pretrained(directory)
    config._attn_implementation = attn_implementation
    with torch.device("meta"):
        model = _model_class(config)(config)
    model.model.visual = VisionTowerRemoved()
    # Fresh allocations: tensors at arbitrary offsets of one mmap'd buffer can take other CPU GEMM code paths.
    state = {
        key: torch.empty_like(tensor, device=device).copy_(tensor)
        for key, tensor in load_state_dict(str(directory / WEIGHTS_NAME)).items()
    }
    # A tied weight (tie_word_embeddings: lm_head is embed_tokens) is saved once, under its source's name: re-tie it.
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = [key for key in result.missing_keys if key not in tied]
    if missing or result.unexpected_keys:
        raise SystemExit(
            f"{directory / WEIGHTS_NAME}: does not fit {config.architectures[0]} "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    if tied:  # as from_pretrained does: re-tie a target the file lacks, leave apart weights the file holds apart
        model.tie_weights(missing_keys=set(result.missing_keys), recompute_mapping=False)
    _rebuild_buffers(model, device)
    model.generation_config = GenerationConfig.from_pretrained(directory)
    return model.eval()


def load_awq_model(directory: Path, device: torch.device) -> torch.nn.Module:
    """An AWQ checkpoint through transformers (gptqmodel kernels). The checkpoint holds no vision weights, so
    transformers initialises a throwaway tower, which is replaced by the stub at once."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(os.cpu_count() or 1))
    transformers.logging.set_verbosity_error()  # the missing vision weights are expected, not worth a warning
    model = transformers.AutoModelForImageTextToText.from_pretrained(directory, dtype=AWQ_DTYPE, device_map=str(device))
    model.model.visual = VisionTowerRemoved()
    return model.eval()


def prompt_inputs(
    tokenizer: transformers.PreTrainedTokenizerBase,
    image_token_id: int,
    prompt: str,
    tokens_per_image: list[int],
) -> dict[str, torch.Tensor]:
    """Chat template with one placeholder per image, each expanded to that image's token count (the processor's
    rule: ``grid.prod() // merge_size**2``), tokenized; ``mm_token_type_ids`` marks image tokens with 1."""
    content = [{"type": "image"} for _ in tokens_per_image] + [{"type": "text", "text": prompt}]
    messages = [{"role": "user", "content": content}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    image_token = tokenizer.convert_ids_to_tokens(image_token_id)
    parts = text.split(image_token)
    if len(parts) != len(tokens_per_image) + 1:
        raise SystemExit(f"the chat template produced {len(parts) - 1} image placeholders for {len(tokens_per_image)}")
    expanded = parts[0] + "".join(
        image_token * count + part for count, part in zip(tokens_per_image, parts[1:], strict=True)
    )
    encoded = tokenizer(expanded, return_tensors="pt")
    input_ids = encoded["input_ids"]
    return {
        "input_ids": input_ids,
        "attention_mask": encoded["attention_mask"],
        "mm_token_type_ids": (input_ids == image_token_id).long(),
    }


def read_vision_output(folder: Path) -> tuple[list[torch.Tensor], dict]:
    """``[image_embeds, deepstack_0, …]`` (the DeepStack levels of a Qwen3-VL model; none otherwise) and grid.json."""
    grid = json.loads((folder / "grid.json").read_text())
    features = [torch.from_numpy(np.load(folder / name)) for name in ["image_embeds.npy", *grid.get("deepstack", [])]]
    for name, feature in zip(["image_embeds.npy", *grid.get("deepstack", [])], features, strict=True):
        if sum(grid["tokens_per_image"]) != feature.shape[0]:
            raise SystemExit(
                f"{folder}: grid.json announces {sum(grid['tokens_per_image'])} tokens, {name} holds "
                f"{feature.shape[0]}; all files must come from the same vision_inference.py run"
            )
    return features, grid


def encoder_outputs(features: list[torch.Tensor], tokens_per_image: list[int], config: object) -> dict:
    """``mm_encoder_outputs`` for ``model.generate``: the image embeddings and, for a DeepStack model, every level."""
    per_image = [tuple(torch.split(feature, tokens_per_image)) for feature in features]
    levels = len(getattr(config.vision_config, "deepstack_visual_indexes", None) or [])
    if len(per_image) - 1 != levels:
        raise SystemExit(f"the vision output holds {len(per_image) - 1} DeepStack levels, the model takes {levels}")
    if not levels:
        return {"image": BaseModelOutputWithPooling(pooler_output=per_image[0])}
    from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

    return {"image": BaseModelOutputWithDeepstackFeatures(pooler_output=per_image[0], deepstack_features=per_image[1:])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--vision-output", type=Path, help="output folder of vision_inference.py (omit: text only)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--output", type=Path, help="write prompt ids, generated ids and text here (JSON)")
    parser.add_argument("--model-dir", type=Path, default=HERE, help="folder with the language model")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--attn-implementation", default="sdpa", help="attention kernel of a float checkpoint")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    config = AutoConfig.from_pretrained(args.model_dir)
    if getattr(config, "quantization_config", None):
        model = load_awq_model(args.model_dir, device)
    else:
        model = load_float_model(args.model_dir, device, args.attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)

    features, grid = read_vision_output(args.vision_output) if args.vision_output else ([], {"tokens_per_image": []})
    inputs: dict[str, object] = prompt_inputs(tokenizer, config.image_token_id, args.prompt, grid["tokens_per_image"])
    inputs = {key: value.to(device) for key, value in inputs.items()}
    if features:
        inputs["image_grid_thw"] = torch.tensor(grid["image_grid_thw"], dtype=torch.long, device=device)
        features = [feature.to(device) for feature in features]
        inputs["mm_encoder_outputs"] = encoder_outputs(features, grid["tokens_per_image"], config)

    prompt_ids = inputs["input_ids"]
    with torch.inference_mode():
        sequences = model.generate(
            **inputs, max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None
        )
    tokens = sequences[0, prompt_ids.shape[1] :].cpu().tolist()
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    print(text)
    if args.output is not None:
        result = {"prompt": args.prompt, "input_ids": prompt_ids[0].cpu().tolist(), "tokens": tokens, "text": text}
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
