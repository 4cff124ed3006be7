"""Task accuracy per path and its paired delta against the reference. Pure: answers in, figures out.

Every path answers the *same* questions, so the comparison is paired: what matters are the questions on which the two
paths disagree in correctness (``lost``: the reference was right and the candidate wrong; ``gained``: the reverse).

* **delta** = accuracy(candidate) − accuracy(reference) = (gained − lost) / n.
* **95 % confidence interval** of the delta: Newcombe's square-and-add (hybrid score) interval for a difference of
  paired proportions (Newcombe 1998, *Statistics in Medicine* 17:2635, method 10): Wilson score intervals of both
  accuracies, combined with the (continuity-corrected) phi correlation of the paired table. Closed form (no
  resampling, so deterministic), always inside [−1, 1], always contains the point estimate, defined for every table
  (including 0 discordant pairs, where Wald's interval collapses to a point), and swapping the two paths mirrors it.
* **McNemar's exact test**: two-sided binomial p-value of ``lost`` among the ``lost + gained`` discordant pairs
  (p = 1 when there are none): how surprising the imbalance would be if both paths were equally accurate.

``normalize_answer`` is the scoring rule: exact match after case-folding, trimming whitespace and trailing punctuation
and dropping one leading article, so ``"A red circle."`` scores as ``"red circle"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
TRAILING_PUNCTUATION = ".,;:!?\"'"
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def normalize_answer(text: str) -> str:
    """The comparable form of an answer: case-folded, inner whitespace collapsed to one space, leading and trailing
    whitespace and trailing punctuation (``.,;:!?`` and quotes) removed, then one leading article (a, an, the) dropped.

    ``"  A Red circle. "`` → ``"red circle"``; ``"Yes!"`` → ``"yes"``; ``"the"`` alone stays ``"the"`` (an article is
    dropped only before another word)."""
    text = " ".join(text.casefold().split())
    text = text.rstrip(TRAILING_PUNCTUATION).rstrip()
    return _ARTICLE.sub("", text, count=1)


def is_correct(prediction: str, answer: str) -> bool:
    """Exact match of the normalized prediction and the normalized reference answer."""
    return normalize_answer(prediction) == normalize_answer(answer)


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction correct; an empty sequence has no accuracy (``ValueError``, never NaN)."""
    if not correct:
        raise ValueError("accuracy of no questions is undefined")
    return sum(map(bool, correct)) / len(correct)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``successes / n`` (``n`` > 0)."""
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the extremes (rounding would leave 1 − 1e-16)
    return low, 1.0 if successes == n else min(1.0, centre + half)


def mcnemar_exact_p(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: P(a split at least as uneven as ``lost``/``gained`` under Binomial(m, ½)),
    computed exactly with integers (no underflow to NaN for thousands of discordant pairs); 1.0 when m = 0."""
    m = lost + gained
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(lost, gained) + 1))
    return min(1.0, float(Fraction(2 * tail, 2**m)))


@dataclass(frozen=True)
class AccuracyDelta:
    """Paired comparison of two paths' correctness on the same ``n`` questions (see the module docstring)."""

    n: int
    reference_accuracy: float
    candidate_accuracy: float
    delta: float  # candidate − reference; negative: the candidate is less accurate
    ci_low: float
    ci_high: float
    lost: int  # reference right, candidate wrong
    gained: int  # reference wrong, candidate right
    mcnemar_p: float

    @property
    def drop(self) -> float:
        """How much accuracy the candidate loses against the reference (−delta): what ``max_accuracy_drop`` limits."""
        return (self.lost - self.gained) / self.n


def paired_delta(reference_correct: Sequence[bool], candidate_correct: Sequence[bool]) -> AccuracyDelta:
    """Accuracy of both, their difference with Newcombe's 95 % interval, and McNemar's exact p-value."""
    if len(reference_correct) != len(candidate_correct):
        raise ValueError(f"paired comparison of {len(reference_correct)} and {len(candidate_correct)} answers")
    n = len(reference_correct)
    if n == 0:
        raise ValueError("paired comparison of no questions is undefined")
    both = sum(bool(r) and bool(c) for r, c in zip(reference_correct, candidate_correct, strict=True))
    lost = sum(bool(r) and not c for r, c in zip(reference_correct, candidate_correct, strict=True))
    gained = sum(bool(c) and not r for r, c in zip(reference_correct, candidate_correct, strict=True))
    neither = n - both - lost - gained
    reference, candidate = both + lost, both + gained
    p_ref, p_cand = reference / n, candidate / n
    delta = (gained - lost) / n
    low_ref, high_ref = wilson_interval(reference, n)
    low_cand, high_cand = wilson_interval(candidate, n)
    phi = _phi(both, lost, gained, neither)
    below = _combined(p_cand - low_cand, high_ref - p_ref, phi)
    above = _combined(high_cand - p_cand, p_ref - low_ref, phi)
    return AccuracyDelta(
        n=n,
        reference_accuracy=p_ref,
        candidate_accuracy=p_cand,
        delta=delta,
        ci_low=max(-1.0, min(delta, delta - below)),
        ci_high=min(1.0, max(delta, delta + above)),
        lost=lost,
        gained=gained,
        mcnemar_p=mcnemar_exact_p(lost, gained),
    )


def _phi(both: int, lost: int, gained: int, neither: int) -> float:
    """Newcombe's continuity-corrected phi correlation of the paired 2×2 table: (ad − bc − n/2)/√(margins) when
    ad − bc > n/2, 0 for 0 ≤ ad − bc ≤ n/2, (ad − bc)/√(margins) below 0, and 0 when a margin is empty (as in
    Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency Tables*, ch. 8)."""
    n = both + lost + gained + neither
    margins = (both + gained) * (lost + neither) * (both + lost) * (gained + neither)
    if not margins:
        return 0.0
    cross = both * neither - lost * gained
    if cross > n / 2:
        return (cross - n / 2) / math.sqrt(margins)
    return cross / math.sqrt(margins) if cross < 0 else 0.0


def _combined(x: float, y: float, phi: float) -> float:
    """sqrt(x² − 2φxy + y²), which is real for |φ| ≤ 1 (= (x − φy)² + (1 − φ²)y²); clamped against rounding."""
    return math.sqrt(max(x * x - 2.0 * phi * x * y + y * y, 0.0))


@dataclass(frozen=True)
class Flip:
    """One question on which the candidate's correctness differs from the reference's."""

    index: int  # position in the eval set
    question: str
    image: str  # the image(s) the question is about, as named in the eval set
    answer: str  # the eval set's answer
    reference: str  # what the reference path answered
    candidate: str  # what the candidate path answered
    direction: Literal["lost", "gained"]  # lost: reference right, candidate wrong


@dataclass(frozen=True)
class AccuracyComparison:
    """What the accuracy check reports for one candidate path: the paired delta, the flips, and how many answers
    changed text at all (after normalization; a change between two wrong answers is not a flip)."""

    delta: AccuracyDelta
    changed: int
    flips: tuple[Flip, ...]


def compare_accuracy(
    answers: Sequence[str],
    reference: Sequence[str],
    candidate: Sequence[str],
    questions: Sequence[str] | None = None,
    images: Sequence[str] | None = None,
) -> AccuracyComparison:
    """Score both paths' predictions against the eval set's ``answers`` (``normalize_answer`` exact match) and compare
    them pairwise. ``questions`` and ``images`` only label the flips."""
    if not len(answers) == len(reference) == len(candidate):
        raise ValueError(f"{len(answers)} answers, {len(reference)} reference and {len(candidate)} candidate ones")
    reference_correct = [is_correct(p, a) for p, a in zip(reference, answers, strict=True)]
    candidate_correct = [is_correct(p, a) for p, a in zip(candidate, answers, strict=True)]
    flips = tuple(
        Flip(
            index=index,
            question=questions[index] if questions is not None else "",
            image=images[index] if images is not None else "",
            answer=answers[index],
            reference=reference[index],
            candidate=candidate[index],
            direction="lost" if ref_ok else "gained",
        )
        for index, (ref_ok, cand_ok) in enumerate(zip(reference_correct, candidate_correct, strict=True))
        if ref_ok != cand_ok
    )
    changed = sum(normalize_answer(r) != normalize_answer(c) for r, c in zip(reference, candidate, strict=True))
    return AccuracyComparison(paired_delta(reference_correct, candidate_correct), changed, flips)
