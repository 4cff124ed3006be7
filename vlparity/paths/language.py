"""Greedy generation and teacher-forced scoring shared by every path that runs a transformers LM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Generation:
    """Greedy continuation: the new tokens and, for each, the logits row that chose it."""

    tokens: np.ndarray  # int64 [steps]
    logits: np.ndarray  # float32 [steps, vocab]


@torch.inference_mode()
def greedy_generate(model: nn.Module, inputs: dict[str, Any], max_new_tokens: int) -> Generation:
    prompt_length = inputs["input_ids"].shape[1]
    output = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        output_logits=True,
        return_dict_in_generate=True,
    )
    tokens = output.sequences[0, prompt_length:].cpu().numpy().astype(np.int64)
    logits = torch.stack([step[0] for step in output.logits]).float().cpu().numpy()
    return Generation(tokens=tokens, logits=logits)


@torch.inference_mode()
def teacher_forced_logits(model: nn.Module, inputs: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
    """One forward pass over prompt + tokens[:-1]; keep the last ``len(tokens)`` logits rows."""
    count = len(tokens)
    if count == 0:
        return np.zeros((0, model.config.get_text_config().vocab_size), dtype=np.float32)
    input_ids = inputs["input_ids"]
    continuation = torch.as_tensor(tokens[:-1], dtype=input_ids.dtype, device=input_ids.device)[None]
    extended = dict(inputs)
    extended["input_ids"] = torch.cat([input_ids, continuation], dim=1)
    extended["attention_mask"] = torch.ones_like(extended["input_ids"])
    if "mm_token_type_ids" in inputs:
        extended["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(continuation, dtype=inputs["mm_token_type_ids"].dtype)],
            dim=1,
        )
    output = model(**extended, use_cache=False, logits_to_keep=count)
    return output.logits[0].float().cpu().numpy()


@torch.inference_mode()
def prefill(model: nn.Module, inputs: dict[str, Any]) -> tuple[Any, torch.Tensor]:
    """One forward pass over the prompt: the filled KV cache and the greedy first token ``[1, 1]``."""
    output = model(**inputs, use_cache=True, logits_to_keep=1)
    return output.cache, output.logits[:, -1:].argmax(-1)


@torch.inference_mode()
def decode(model: nn.Module, cache: Any, token: torch.Tensor, steps: int) -> np.ndarray:
    """``steps`` greedy single-token forward passes on a prefilled ``cache`` (which it extends in place).

    Positions come from the cache length (and, for Qwen VL, the rope deltas the prefill stored on the model).
    """
    tokens = []
    for _ in range(steps):
        output = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
        cache, token = output.cache, output.logits[:, -1:].argmax(-1)
        tokens.append(int(token))
    return np.asarray(tokens, dtype=np.int64)
