"""Generation config drift: every field that changes what a deployment generates fails, inactive or unknown
differences warn, metadata is ignored (vlparity/parity/generation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from vlparity.parity.generation import compare_generation_configs

# What transformers 5 gives for the fixtures' generation_config.json (most fields unset).
SOURCE: dict[str, Any] = {
    "bos_token_id": 0, "eos_token_id": [2], "pad_token_id": 0, "do_sample": None, "temperature": None,
    "top_k": None, "top_p": None, "repetition_penalty": None, "max_new_tokens": None, "use_cache": True,
    "transformers_version": "5.24.0",
}  # fmt: skip


def drift(**changes: Any) -> dict[str, bool]:
    """field → fails, for the source config with ``changes`` applied."""
    return {d.field: d.fails for d in compare_generation_configs(SOURCE, {**SOURCE, **changes})}


def test_an_identical_config_has_no_drift() -> None:
    assert drift() == {}


@pytest.mark.parametrize(
    "changes",
    [{"do_sample": True}, {"repetition_penalty": 1.05}, {"max_new_tokens": 64}, {"eos_token_id": [3]}],
    ids=["do_sample", "repetition_penalty", "max_new_tokens", "eos_token_id"],
)
def test_a_field_that_changes_the_generated_tokens_fails(changes: dict[str, Any]) -> None:
    assert drift(**changes) == dict.fromkeys(changes, True)


def test_a_sampling_knob_fails_when_the_candidate_samples() -> None:
    assert drift(do_sample=True, temperature=0.7) == {"do_sample": True, "temperature": True}


def test_a_sampling_knob_only_warns_while_both_sides_decode_greedily() -> None:
    assert drift(temperature=0.7, top_p=0.9) == {"temperature": False, "top_p": False}


def test_an_unset_field_equals_the_default_written_out() -> None:
    assert drift(do_sample=False, temperature=1.0, repetition_penalty=1.0, eos_token_id=2) == {}


def test_metadata_is_ignored_and_other_fields_warn() -> None:
    assert drift(transformers_version="5.30.0", use_cache=False, pad_token_id=7) == {"pad_token_id": False}


def test_a_changed_eos_is_named_as_such() -> None:
    (eos,) = compare_generation_configs(SOURCE, {**SOURCE, "eos_token_id": 3})
    assert eos.describe("x/generation_config.json") == (
        "generation config: the end-of-sequence ids differ: reference 2, candidate 3 (x/generation_config.json); "
        "the two stop at different tokens"
    )
