"""The words of a diagnosis name the place: no "decoder the LM head", no "reference None, candidate None"."""

from __future__ import annotations

import numpy as np

from vlparity.parity.layers import LayerDivergence
from vlparity.parity.tokens import compare_teacher_forced, compare_tokens
from vlparity.parity.tolerances import tolerance_for
from vlparity.parity.verdict import judge_tokens
from vlparity.session import _describe_layers

LOGITS = np.eye(4, dtype=np.float32) * 5  # row i chooses token i


def test_a_side_that_stops_at_end_of_sequence_is_named_not_none() -> None:
    tokens = compare_tokens(np.array([0, 1, 2]), np.array([0, 1]), LOGITS[:3], LOGITS[:2])
    forced = compare_teacher_forced(LOGITS[:3], LOGITS[:3], np.array([0, 1, 2]))
    (reason,) = judge_tokens(tokens, forced, tolerance_for("split")).reasons
    assert "None" not in reason
    assert (
        "first divergence at step 2: the candidate ends (end of sequence) after 2 token(s), the other goes on to 3"
        in (reason)
    )


def test_the_largest_growth_at_the_lm_head_reads_as_the_lm_head() -> None:
    layers = LayerDivergence(rel_l2=(0.0, 0.01, 0.02, 0.5), first_diverging=1, largest_growth=3)
    assert _describe_layers(layers, quantized=True).startswith("largest hidden-state error growth at the LM head (")


def test_the_largest_growth_in_a_decoder_layer_names_the_layer() -> None:
    layers = LayerDivergence(rel_l2=(0.0, 0.3, 0.31, 0.32), first_diverging=1, largest_growth=1)
    assert _describe_layers(layers, quantized=True).startswith("largest hidden-state error growth at decoder layer 0 (")
