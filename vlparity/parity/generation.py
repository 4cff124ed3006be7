"""Generation config drift: an artefact's ``generation_config.json`` against the original's. Pure: two dicts in (as
``GenerationConfig.to_dict()`` gives them), the differences out, each marked failing or warning.

vlparity itself always decodes greedily, so a changed sampling setting would pass every token check while the
deployment, which reads the artefact's file, generates something else. The rule (docs/tolerances.md):

- **fail**: a field that changes which tokens a deployment generates: stopping (``eos_token_id``, ``max_new_tokens``,
  ``max_length``, ``min_*``, ``stop_strings``), logits processing (``repetition_penalty``, ``no_repeat_ngram_size``,
  ``bad_words_ids``, ``suppress_tokens``, ``forced_*``, ``sequence_bias``, …), search (``num_beams`` …) and
  ``do_sample``; the sampling knobs (``temperature``, ``top_k``, ``top_p``, ``min_p``, ``typical_p``, …) fail when
  either side samples;
- **warn**: the sampling knobs while both sides decode greedily (inactive, but a deployment that turns sampling on
  would differ), and every other field that differs (``pad_token_id``, ``bos_token_id``, unknown fields);
- **ignored**: metadata and speed-only settings (``transformers_version``, ``output_*``, ``use_cache``, caches,
  compilation, assisted decoding), which never change the tokens.

A field one side leaves unset (``None``) counts as transformers' default for it, so ``temperature: 1.0`` written out
is not a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SAMPLING_KNOBS = frozenset(
    {"temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "top_h"}
)
CHANGES_TOKENS = frozenset(
    {
        "do_sample", "eos_token_id", "max_new_tokens", "max_length", "min_new_tokens", "min_length", "stop_strings",
        "max_time", "repetition_penalty", "encoder_repetition_penalty", "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size", "bad_words_ids", "force_words_ids", "constraints", "suppress_tokens",
        "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id", "sequence_bias",
        "exponential_decay_length_penalty", "renormalize_logits", "remove_invalid_values", "guidance_scale",
        "watermarking_config", "token_healing", "num_beams", "num_beam_groups", "diversity_penalty", "length_penalty",
        "early_stopping", "penalty_alpha", "dola_layers", "num_return_sequences",
    }
)  # fmt: skip
NEVER_CHANGES_TOKENS = frozenset(
    {
        "transformers_version", "_from_model_config", "output_attentions", "output_hidden_states", "output_scores",
        "output_logits", "return_dict_in_generate", "use_cache", "cache_implementation", "cache_config",
        "max_cache_len", "compile_config", "disable_compile", "prefill_chunk_size", "continuous_batching_config",
        "low_memory", "assistant_confidence_threshold", "assistant_early_exit", "assistant_ensemble_weight",
        "assistant_lookbehind", "is_assistant", "max_matching_ngram_size", "num_assistant_tokens",
        "num_assistant_tokens_schedule", "prompt_lookup_num_tokens", "speculation_type", "target_lookbehind",
        "use_mtp",
    }
)  # fmt: skip
# transformers' behaviour when a field is None (GenerationConfig leaves most fields unset in transformers 5).
DEFAULTS: dict[str, Any] = {
    "do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "typical_p": 1.0, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "num_beams": 1, "num_beam_groups": 1, "diversity_penalty": 0.0,
    "length_penalty": 1.0, "renormalize_logits": False, "remove_invalid_values": False, "num_return_sequences": 1,
    "guidance_scale": 1.0, "early_stopping": False,
}  # fmt: skip


@dataclass(frozen=True)
class GenerationDrift:
    """One field whose effective value differs between the reference's generation config and a candidate's."""

    field: str
    reference: Any
    candidate: Any
    fails: bool

    def describe(self, origin: str) -> str:
        """``origin``: the candidate's file, so the message says where to fix it."""
        if self.field == "eos_token_id":
            return (
                f"generation config: the end-of-sequence ids differ: reference {self.reference}, candidate "
                f"{self.candidate} ({origin}); the two stop at different tokens"
            )
        effect = "a deployment generates differently" if self.fails else "inactive under greedy decoding"
        return f"generation config: {self.field} {self.candidate!r}, reference {self.reference!r} ({origin}): {effect}"


def _effective(field: str, value: Any) -> Any:
    """The value transformers acts on: the default for ``None``; one-element lists as their element (``[2]`` ≡ 2)."""
    if value is None:
        value = DEFAULTS.get(field)
    if isinstance(value, (list, tuple)):
        value = tuple(_effective(field, item) if isinstance(item, (list, tuple)) else item for item in value)
        return value[0] if len(value) == 1 else value
    return value


def compare_generation_configs(reference: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[GenerationDrift]:
    """Every field whose effective value differs, in name order, each failing or warning as the module doc says."""
    sampling = bool(_effective("do_sample", reference.get("do_sample"))) or bool(
        _effective("do_sample", candidate.get("do_sample"))
    )
    drifts = []
    for field in sorted(set(reference) | set(candidate)):
        if field in NEVER_CHANGES_TOKENS:
            continue
        ref, cand = _effective(field, reference.get(field)), _effective(field, candidate.get(field))
        if ref == cand:
            continue
        fails = field in CHANGES_TOKENS or (field in SAMPLING_KNOBS and sampling)
        drifts.append(GenerationDrift(field, ref, cand, fails))
    return drifts
