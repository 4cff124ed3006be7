"""Task accuracy: the scoring rule, the paired delta with its 95 % interval, McNemar's p and the flipped answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlparity.parity.accuracy import (
    accuracy,
    compare_accuracy,
    is_correct,
    mcnemar_exact_p,
    normalize_answer,
    paired_delta,
    wilson_interval,
)

pairs = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("rectangle", "rectangle"),
        ("  Yes!  ", "yes"),
        ("A red circle.", "red circle"),
        ("an  Orange\tTRIANGLE ?", "orange triangle"),
        ("The cat", "cat"),
        ("the", "the"),  # an article alone is the answer
        ("another", "another"),  # not an article
        ('"blue".', '"blue'),  # trailing quotes and punctuation go; a leading quote stays
        ("", ""),
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_a_model_answer_with_article_and_case_matches_the_bare_reference() -> None:
    assert is_correct("A Red Circle", "red circle") and is_correct("yes", "Yes.") and not is_correct("no", "yes")


@given(st.text(max_size=30))
def test_normalize_answer_is_idempotent(text: str) -> None:
    assert normalize_answer(normalize_answer(text)) == normalize_answer(text)


def test_accuracy_of_nothing_is_an_error_not_nan() -> None:
    with pytest.raises(ValueError, match="no questions"):
        accuracy([])
    with pytest.raises(ValueError, match="no questions"):
        paired_delta([], [])


@given(pairs)
def test_identical_answers_have_delta_zero_and_a_ci_containing_it(table: list[tuple[bool, bool]]) -> None:
    correct = [reference for reference, _ in table]
    delta = paired_delta(correct, correct)
    assert delta.delta == 0 and delta.lost == delta.gained == 0 and delta.mcnemar_p == 1.0
    assert delta.ci_low <= 0 <= delta.ci_high


@given(pairs)
def test_the_ci_contains_the_point_estimate_and_stays_in_range(table: list[tuple[bool, bool]]) -> None:
    reference, candidate = zip(*table, strict=True)
    delta = paired_delta(reference, candidate)
    figures = (delta.delta, delta.ci_low, delta.ci_high, delta.mcnemar_p, delta.reference_accuracy)
    assert all(math.isfinite(figure) for figure in figures)
    assert -1.0 <= delta.ci_low <= delta.delta <= delta.ci_high <= 1.0
    assert 0.0 <= delta.mcnemar_p <= 1.0
    assert delta.delta == pytest.approx(delta.candidate_accuracy - delta.reference_accuracy)
    assert delta.drop == pytest.approx(-delta.delta)


@given(pairs)
def test_swapping_the_roles_negates_the_delta_and_mirrors_the_ci(table: list[tuple[bool, bool]]) -> None:
    reference, candidate = zip(*table, strict=True)
    forward, backward = paired_delta(reference, candidate), paired_delta(candidate, reference)
    assert backward.delta == pytest.approx(-forward.delta)
    assert (backward.ci_low, backward.ci_high) == pytest.approx((-forward.ci_high, -forward.ci_low))
    assert (backward.lost, backward.gained, backward.mcnemar_p) == (forward.gained, forward.lost, forward.mcnemar_p)


@pytest.mark.parametrize("n", [1, 7, 100])
def test_all_correct_against_all_wrong_is_a_delta_of_minus_one(n: int) -> None:
    delta = paired_delta([True] * n, [False] * n)
    assert (delta.delta, delta.drop, delta.lost, delta.gained) == (-1.0, 1.0, n, 0)
    assert delta.ci_low == -1.0
    assert (delta.ci_high < 0) == (n > 1)  # one question cannot rule out chance; seven can


def test_a_ci_that_excludes_zero_on_a_large_consistent_drop() -> None:
    """200 questions, 30 lost and none gained: the drop is real (interval below 0, McNemar p tiny)."""
    reference = [True] * 180 + [False] * 20
    candidate = [True] * 150 + [False] * 50
    delta = paired_delta(reference, candidate)
    assert delta.delta == pytest.approx(-0.15) and delta.ci_high < 0 and delta.mcnemar_p < 1e-6


def test_newcombe_interval_by_hand() -> None:
    """Cavo et al. (2012) as Fagerland, Lydersen & Laake tabulate it, (a, b, c, d) = (59, 6, 16, 80), the candidate
    being the first margin: the square-and-add formula worked step by step here, φ continuity-corrected."""
    table = [(True, True)] * 59 + [(False, True)] * 6 + [(True, False)] * 16 + [(False, False)] * 80
    reference, candidate = zip(*table, strict=True)
    n = 161
    p1, p2 = 65 / n, 75 / n
    (l1, u1), (l2, u2) = wilson_interval(65, n), wilson_interval(75, n)
    phi = (59 * 80 - 6 * 16 - n / 2) / math.sqrt(65 * 96 * 75 * 86)
    low = (p1 - p2) - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = (p1 - p2) + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    delta = paired_delta(reference, candidate)
    assert delta.delta == pytest.approx(-10 / 161)
    assert (delta.ci_low, delta.ci_high) == pytest.approx((low, high))
    assert -0.13 < delta.ci_low < -0.11 and -0.02 < delta.ci_high < 0.01
    assert delta.mcnemar_p == pytest.approx(mcnemar_exact_p(16, 6)) and delta.mcnemar_p < 0.06


def test_wilson_interval_of_the_extremes() -> None:
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)


def test_mcnemar_exact_p() -> None:
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(4000, 0) == 0.0  # underflows to 0, never NaN


def test_flips_name_the_question_the_image_and_the_direction() -> None:
    comparison = compare_accuracy(
        answers=["circle", "yes", "red", "no"],
        reference=["circle", "yes", "blue", "No."],
        candidate=["A circle.", "no", "red", "yes"],
        questions=["what shape?", "is it red?", "what colour?", "is it blue?"],
        images=["0.png", "1.png", "2.png", "3.png"],
    )
    assert [(flip.index, flip.direction) for flip in comparison.flips] == [(1, "lost"), (2, "gained"), (3, "lost")]
    first = comparison.flips[0]
    assert (first.question, first.image, first.answer, first.reference, first.candidate) == (
        "is it red?", "1.png", "yes", "yes", "no",
    )  # fmt: skip
    assert comparison.changed == 3  # "A circle." is the same answer as "circle"
    assert (comparison.delta.lost, comparison.delta.gained, comparison.delta.drop) == (2, 1, 0.25)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 answers"):
        compare_accuracy(["a", "b"], ["a"], ["a", "b"])
