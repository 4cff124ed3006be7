"""``--suggest-exclusions``: the nodes which, kept out of onnx-qdq's quantization (computed in float), restore its gate.

A bounded greedy search, as Polygraphy's ``debug precision`` and Intel Neural Compressor's accuracy-aware tuning do:

1. rank the failing graph's quantized nodes by the noise each adds (``parity.tensor_table.noise_growth`` over the
   per-tensor error table of every sample: the node whose own arithmetic adds the most error first);
2. exclude the top 1, 2, 4, … of the ranking, re-quantizing from the fp32 export each time, until the gate passes;
3. bisect between the last failing and the first passing count for the shortest passing prefix.

A trial is one quantization plus the vision-side gate (embeddings against original, the per-tensor table) on the run's
samples with images; there are at most ``max_trials``. The answer is a ``nodes_to_exclude`` list for AMD Quark or ORT
``quantize_static``, and ``--qdq-exclude`` takes it as it is; the full gate (tokens too) is then judged by that run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vlparity.export.qdq import is_dequantize, is_quantize
from vlparity.inputs import Sample
from vlparity.parity.tensor_table import build_table, noise_growth
from vlparity.paths.onnx import OnnxQdqPath
from vlparity.session import ParitySession

log = logging.getLogger(__name__)
PATH = "onnx-qdq"
DEFAULT_MAX_TRIALS = 12


@dataclass(frozen=True)
class Trial:
    excluded: int  # how many of the ranked nodes were kept out of quantization
    passed: bool
    reason: str  # the first failing reason ("" when it passed)


@dataclass(frozen=True)
class ExclusionSuggestion:
    nodes: tuple[str, ...] | None  # the whole list to pass as --qdq-exclude (None: none found within the trials)
    already_excluded: tuple[str, ...]  # --qdq-exclude of the run, kept in every trial
    ranked: int  # quantized nodes ranked
    trials: tuple[Trial, ...]

    def lines(self) -> list[str]:
        """The suggestion in words, for the terminal."""
        tried = ", ".join(f"{t.excluded}:{'pass' if t.passed else 'fail'}" for t in self.trials)
        if self.nodes is None:
            last = self.trials[-1] if self.trials else None
            everything = last is not None and last.excluded == self.ranked
            why = (
                "even with every quantized node kept in float the gate fails: not a quantization error"
                if everything
                else f"the budget of {len(self.trials)} trial(s) ran out (raise --max-exclusion-trials)"
            )
            return [f"{PATH}: no exclusion list restores the gate ({why}); trials (excluded:verdict): {tried}",
                    *([f"  last failure: {last.reason}"] if last else [])]  # fmt: skip
        new = [node for node in self.nodes if node not in self.already_excluded]
        return [
            f"{PATH}: keeping {len(new)} more node(s) out of quantization restores the vision gate and the per-tensor "
            f"table on every sample ({len(self.trials)} trial(s), excluded:verdict {tried}). Rerun with:",
            f"  --qdq-exclude {','.join(self.nodes)}",
            f"  nodes_to_exclude = {list(self.nodes)!r}  # AMD Quark / onnxruntime quantize_static",
        ]


def _quantized_nodes(qdq_model: Path) -> list[str]:
    """Names of the nodes of a QDQ graph that read a DequantizeLinear output: the ones quantization changed."""
    import onnx

    graph = onnx.load(str(qdq_model), load_external_data=False).graph
    dequantized = {out for node in graph.node if is_dequantize(node) for out in node.output}
    return [
        node.name
        for node in graph.node
        if not (is_quantize(node) or is_dequantize(node)) and dequantized.intersection(node.input)
    ]


def rank_nodes(session: ParitySession, samples: list[Sample]) -> list[str]:
    """The quantized nodes of ``session``'s onnx-qdq graph: first those that produce a tensor or read a weight under
    the gate's floors, then the rest; within each, most added noise first (ties: graph order)."""
    import onnx

    runner = session.runner(PATH)
    tolerance = session.tolerance(PATH)
    tables = [session.tensor_table(PATH, sample) for sample in samples]
    table = build_table((row for per_sample in tables for row in per_sample.tensors), tables[0].weights)
    graph = onnx.load(str(runner.float_twin()), load_external_data=False).graph
    nodes = [(node.name, node.input, node.output) for node in graph.node]
    growth = noise_growth(nodes, table)
    under = {row.name for row in table.below(tolerance.tensor_min_sqnr_db)}
    under |= {row.name for row in table.weights if not row.sqnr_db >= tolerance.weight_min_sqnr_db}
    failing = {name for name, inputs, outputs in nodes if under.intersection([*inputs, *outputs])}
    quantized = [name for name in _quantized_nodes(runner.model_path) if name in growth]
    return sorted(quantized, key=lambda name: (name not in failing, -growth[name]))  # stable: graph order among ties


class _TrialBench:
    """One session judging onnx-qdq graphs quantized with different exclusions against the run's own original."""

    def __init__(self, session: ParitySession, samples: list[Sample]) -> None:
        self.session = ParitySession(dataclasses.replace(session.settings, paths=("original", PATH)))
        self.session.use_runner(session.runner("original"))
        self.context = session.context
        self.samples = samples

    def gate(self, nodes: tuple[str, ...]) -> tuple[bool, str]:
        self.session.use_runner(OnnxQdqPath(dataclasses.replace(self.context, qdq_exclude=nodes)))
        for sample in self.samples:
            for result in (*self.session.check_vision(PATH, sample), self.session.check_tensors(PATH, sample)):
                if not result.passed:
                    return False, f"{result.check} {sample.sample_id}: {result.reasons[0]}"
        return True, ""


def shortest_passing_prefix(
    candidates: int, gate: Callable[[int], tuple[bool, str]], max_trials: int
) -> tuple[int | None, list[Trial]]:
    """The smallest ``count`` ≤ ``candidates`` for which ``gate(count)`` passes, assuming more exclusions never hurt:
    counts 1, 2, 4, … until one passes, then bisection; at most ``max_trials`` calls. None: none passed."""
    trials: list[Trial] = []

    def attempt(count: int) -> bool:
        passed, reason = gate(count)
        trials.append(Trial(count, passed, reason))
        return passed

    failing, passing, count = 0, None, 1
    while passing is None and len(trials) < max_trials and candidates:
        count = min(count, candidates)
        if attempt(count):
            passing = count
        elif count == candidates:
            break
        else:
            failing, count = count, count * 2
    while passing is not None and passing - failing > 1 and len(trials) < max_trials:
        middle = (failing + passing) // 2
        if attempt(middle):
            passing = middle
        else:
            failing = middle
    return passing, trials


def suggest_exclusions(
    session: ParitySession, samples: list[Sample], max_trials: int = DEFAULT_MAX_TRIALS
) -> ExclusionSuggestion:
    """Search the shortest prefix of ``rank_nodes`` whose exclusion makes onnx-qdq pass (module docstring)."""
    samples = [sample for sample in samples if sample.images]
    initial = tuple(session.settings.qdq_exclude)
    ranked = [node for node in rank_nodes(session, samples) if node not in initial]
    bench = _TrialBench(session, samples)

    def gate(count: int) -> tuple[bool, str]:
        passed, reason = bench.gate(initial + tuple(ranked[:count]))
        log.info("--suggest-exclusions: %d node(s) kept in float: %s", count, "pass" if passed else reason)
        return passed, reason

    passing, trials = shortest_passing_prefix(len(ranked), gate, max_trials)
    nodes = initial + tuple(ranked[:passing]) if passing is not None else None
    return ExclusionSuggestion(nodes, initial, len(ranked), tuple(trials))
