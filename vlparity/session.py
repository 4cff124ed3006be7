"""A parity session: builds paths lazily, runs samples through them once, judges against ``original``.

Shared by the CLI and the pytest plugin, so both report the same numbers the same way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlparity.devices import check_device_map, dtype_name, resolve_device, resolve_dtype
from vlparity.errors import UsageError
from vlparity.eval_sets import EvalSet
from vlparity.export.qdq import DEFAULT_QDQ_CONFIG, QdqConfig, check_qdq_config
from vlparity.inputs import Sample, sample_images
from vlparity.model_source import resolve_model
from vlparity.parity.accuracy import compare_accuracy
from vlparity.parity.generation import GenerationDrift, compare_generation_configs
from vlparity.parity.layers import LayerDivergence, compare_layers, noise_threshold
from vlparity.parity.series import error_histogram, merged_patch_grid
from vlparity.parity.tensor_table import TensorTable, WeightError, build_table, tensor_error, weight_error
from vlparity.parity.tensors import compare_tensors
from vlparity.parity.tokens import compare_teacher_forced, compare_tokens
from vlparity.parity.tolerances import Tolerance, tolerance_for
from vlparity.parity.verdict import first_failing, judge_accuracy, judge_tensor_table, judge_tokens, judge_vision
from vlparity.parity.weights import LinearError, judge_weights
from vlparity.paths import REFERENCE_PATH, Generation, PathContext, PathRunner, create_path, parse_path_names
from vlparity.paths.base import capture_decoder_states
from vlparity.paths.onnx import ThirdOpinionUnavailableError
from vlparity.provenance import collect_provenance, verdict_library_versions
from vlparity.report.model import CheckResult, ParityReport, PathReport, summarise_durations, summarise_memory
from vlparity.runtime.activations import ActivationProbe, location
from vlparity.runtime.ort import OrtOptions
from vlparity.static_shape import StaticShape, check_static_shape
from vlparity.vision_features import EMBEDDINGS, VisionFeatures, feature_arrays

log = logging.getLogger(__name__)
DEFAULT_CACHE_DIR = Path(".vlparity-cache")


THIRD_OPINION_MAX_PATCHES = 2048  # onnx.reference is pure numpy: keep it to small inputs
WORST_TENSORS_SHOWN = 10  # rows of the per-tensor error table kept in the report (tensors and weights each)


def _describe_diagnosis(diagnosis: dict[str, Any]) -> tuple[str, ...]:
    lines = []
    pixels = diagnosis.get("preprocessing_max_abs_err")
    if pixels:
        lines.append(
            f"pixel_values differ from the reference processor's (max |Δ| {pixels:.3g}): the preprocessing drifted "
            "(resize filter, normalisation or patching), not the vision encoder"
        )
    if "first_diverging_block" in diagnosis:
        block = diagnosis["first_diverging_block"]
        lines.append(
            f"first diverging vision block: {block}"
            if block is not None
            else "all vision blocks agree: the divergence starts in the merger or the output reordering"
        )
    attribution = diagnosis.get("attribution")
    if attribution == "onnxruntime":
        lines.append("onnx.reference agrees with PyTorch, ONNX Runtime does not: a runtime problem")
    elif attribution == "exporter":
        lines.append(
            "onnx.reference disagrees with PyTorch too: the exported graph or the inputs fed to it are wrong "
            "(exporter problem)"
        )
    elif attribution is not None:
        lines.append(f"onnx.reference third opinion: {attribution}")
    return tuple(lines)


def _describe_layers(
    layers: LayerDivergence,
    quantized: bool,
    baseline: str = "the reference",
    elsewhere: str = "this path's image embeddings",
) -> str:
    """The token diagnosis in words: where the candidate's LM leaves ``baseline``'s on the reference's inputs
    (``elsewhere``: where the divergence comes from when the LM agrees)."""
    last = len(layers.rel_l2) - 1

    def where(state: int) -> str:
        if state in (0, last):
            return "the LM input embeddings" if state == 0 else "the LM head"
        return f"decoder layer {state - 1}"

    if quantized:  # every layer carries quantization error: name the one that adds the most
        state = layers.largest_growth
        before = layers.rel_l2[state - 1] if state else 0.0
        return (
            f"largest hidden-state error growth at {where(state)} (rel L2 {before:.3g} → "
            f"{layers.rel_l2[state]:.3g} against {baseline}, on the reference's inputs)"
        )
    state = layers.first_diverging
    if state is None:
        agrees = "the language model agrees layer by layer on the reference's inputs"
        return f"{agrees}: the divergence comes from {elsewhere}"
    error = layers.rel_l2[state]
    size = "non-finite values" if math.isnan(error) else f"rel L2 {error:.3g}"
    if state == 0:
        return f"the LM input embeddings already differ ({size}): embed_tokens"
    if state == last:
        return f"every decoder layer agrees, the LM head's logits do not ({size})"
    return f"first diverging decoder layer: {state - 1} ({size} in its hidden states)"


def tensors_result(path: str, sample_id: str, table: TensorTable, tolerance: Tolerance) -> CheckResult:
    """A ``tensors`` check: ``table`` judged by ``tolerance``, with its worst rows and per-block summary."""
    verdict = judge_tensor_table(table, tolerance)
    worst_tensor = table.tensors[0] if table.tensors else None
    worst_weight = table.weights[0] if table.weights else None
    metrics = {
        "tensors_compared": len(table.tensors),
        "weights_compared": len(table.weights),
        "min_sqnr_db": worst_tensor.sqnr_db if worst_tensor else math.inf,
        "worst_tensor": worst_tensor.name if worst_tensor else None,
        "worst_location": worst_tensor.location if worst_tensor else None,
        "min_weight_sqnr_db": worst_weight.sqnr_db if worst_weight else math.inf,
        "worst_weight": worst_weight.name if worst_weight else None,
    }
    series = {
        "worst_tensors": [asdict(row) for row in table.tensors[:WORST_TENSORS_SHOWN]],
        "worst_weights": [asdict(row) for row in table.weights[:WORST_TENSORS_SHOWN]],
        "blocks": [asdict(row) for row in table.blocks()],
    }
    return CheckResult(path, "tensors", sample_id, None, verdict.passed, verdict.reasons, metrics, series)


@dataclass(frozen=True)
class RunSettings:
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    paths: tuple[str, ...] = ("original", "split")
    max_new_tokens: int = 16
    cache_dir: Path = DEFAULT_CACHE_DIR
    ort: OrtOptions = field(default_factory=OrtOptions)
    device_map: str | None = None
    trust_remote_code: bool = False
    static_shape: StaticShape | None = None  # --static-shape WxH
    qdq_config: QdqConfig = DEFAULT_QDQ_CONFIG  # --qdq-config
    qdq_exclude: tuple[str, ...] = ()  # --qdq-exclude NODE[,NODE...]: onnx-qdq's nodes kept in float


@dataclass
class _SampleOutputs:
    encoded: tuple[list[np.ndarray], dict[str, Any]] | None = None  # image embeddings, the LM's inputs
    generation: Generation | None = None
    teacher_forced: np.ndarray | None = None  # on the reference's tokens


@dataclass
class ParitySession:
    settings: RunSettings
    path_names: list[str] = field(init=False)
    context: PathContext = field(init=False)
    _runners: dict[str, PathRunner] = field(default_factory=dict, init=False)
    _outputs: dict[tuple[str, Sample], _SampleOutputs] = field(default_factory=dict, init=False)
    _results: dict[str, list[CheckResult]] = field(default_factory=dict, init=False)
    _generation_drift: dict[str, tuple[list[GenerationDrift], Path]] = field(default_factory=dict, init=False)
    _eval_answers: dict[tuple[str, str], tuple[list[str], int]] = field(default_factory=dict, init=False)
    _probes: dict[str, tuple[ActivationProbe, list[WeightError]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.path_names = parse_path_names(self.settings.paths)
        device = resolve_device(self.settings.device)
        self.context = PathContext(
            source=resolve_model(self.settings.model),
            device=device,
            dtype=resolve_dtype(self.settings.dtype, device),
            cache_dir=Path(self.settings.cache_dir),
            ort=self.settings.ort,
            device_map=check_device_map(self.settings.device_map, device),
            trust_remote_code=self.settings.trust_remote_code,
            static_shape=self.settings.static_shape,
            qdq_config=self.settings.qdq_config,
            qdq_exclude=self.settings.qdq_exclude,
        )
        # fail fast on an unsupported architecture or a vision configuration the family's own code cannot run
        self.context.adapter.check_config(self.context.source.config, self.context.source.reference)
        if self.context.static_shape is not None:  # before any model loads: a size the processor changes is refused
            from transformers import AutoImageProcessor

            image_processor = AutoImageProcessor.from_pretrained(
                self.context.source.directory, trust_remote_code=self.context.trust_remote_code
            )
            check_static_shape(self.context.static_shape, image_processor)
        if "onnx-qdq" in self.path_names:  # before any model loads, as for the static shape
            check_qdq_config(self.context.qdq_config, self.context.static_shape is not None)
        model_type = self.context.source.model_type
        self._tolerances = {name: tolerance_for(name, model_type) for name in self.candidates}

    @property
    def candidates(self) -> list[str]:
        return [name for name in self.path_names if name != REFERENCE_PATH]

    def use_runner(self, runner: PathRunner) -> None:
        """Judge ``runner`` (e.g. one over an artefact built elsewhere) under its path's name and tolerance."""
        if runner.name not in self.path_names:
            raise UsageError(f"path {runner.name!r} is not enabled in this session ({', '.join(self.path_names)}).")
        runner.prepare()
        self._runners[runner.name] = runner
        self._outputs = {key: value for key, value in self._outputs.items() if key[0] != runner.name}
        self._probes.pop(runner.name, None)

    def runner(self, name: str) -> PathRunner:
        if name not in self._runners:
            log.info("preparing path %s", name)
            runner = create_path(name, self.context)
            runner.prepare()
            self._runners[name] = runner
        return self._runners[name]

    def tolerance(self, name: str) -> Tolerance:
        return self._tolerances[name]

    def _outputs_of(self, name: str, sample: Sample) -> _SampleOutputs:
        return self._outputs.setdefault((name, sample), _SampleOutputs())

    def _encoded(self, name: str, sample: Sample) -> tuple[VisionFeatures[np.ndarray], dict[str, Any]]:
        """One preprocess and one vision run per (path, sample): the features the vision checks compare and the
        inputs the LM is fed (so ``generate``, ``score`` and the kernel check do not re-run the vision encoder)."""
        outputs = self._outputs_of(name, sample)
        if outputs.encoded is None:
            runner = self.runner(name)
            inputs = runner.preprocess(sample)
            features = runner.vision_encode(inputs)
            outputs.encoded = feature_arrays(features), runner.model_inputs_with(inputs, features)
        return outputs.encoded

    def vision_features(self, name: str, sample: Sample) -> VisionFeatures[np.ndarray]:
        """Everything path ``name``'s vision encoder gave the LM for ``sample`` (embeddings, DeepStack levels)."""
        return self._encoded(name, sample)[0]

    def embeddings(self, name: str, sample: Sample) -> list[np.ndarray]:
        """The image embeddings (one array per image) of path ``name`` for ``sample``."""
        return self.vision_features(name, sample).embeddings

    def model_inputs(self, name: str, sample: Sample) -> dict[str, Any]:
        return self._encoded(name, sample)[1]

    def generation(self, name: str, sample: Sample) -> Generation:
        outputs = self._outputs_of(name, sample)
        if outputs.generation is None:
            inputs = self.model_inputs(name, sample)
            outputs.generation = self.runner(name).generate(sample, self.settings.max_new_tokens, inputs)
        return outputs.generation

    def teacher_forced(self, name: str, sample: Sample) -> np.ndarray:
        outputs = self._outputs_of(name, sample)
        if outputs.teacher_forced is None:
            reference_tokens = self.generation(REFERENCE_PATH, sample).tokens
            inputs = self.model_inputs(name, sample)
            outputs.teacher_forced = self.runner(name).score(sample, reference_tokens, inputs)
        return outputs.teacher_forced

    def check_vision(self, name: str, sample: Sample) -> list[CheckResult]:
        """Compare each image's vision outputs of path ``name`` with ``original``'s, each output on its own (the
        embeddings as check ``vision``, every DeepStack level as check ``deepstack``, named in ``series.output`` and
        in the reasons); record and return the results."""
        reference = self.vision_features(REFERENCE_PATH, sample).named()
        candidate = self.vision_features(name, sample).named()
        results = []
        diagnosis: dict[str, Any] | None = None
        grids = self._merged_grids(sample)
        for output, ref_images in reference.items():
            check = "vision" if output == EMBEDDINGS else "deepstack"
            cand_images = candidate.get(output)
            if cand_images is None or len(cand_images) != len(ref_images):
                found = "missing" if cand_images is None else f"{len(cand_images)} image(s)"
                reason = f"{output}: {found}; the reference has it for {len(ref_images)} image(s)"
                results.append(CheckResult(name, check, sample.sample_id, None, False, (reason,), {},
                                           {"output": output}))  # fmt: skip
                continue
            for index, (ref, cand) in enumerate(zip(ref_images, cand_images, strict=True)):
                grid = list(grids[index]) if index < len(grids) else None
                result, diagnosis = self._judge_image(name, sample, check, output, index, grid, (ref, cand), diagnosis)
                results.append(result)
        extra = sorted(set(candidate) - set(reference))
        if extra:
            reason = f"outputs the reference does not have: {', '.join(extra)} (a model of another family?)"
            results.append(CheckResult(name, "vision", sample.sample_id, None, False, (reason,), {}))
        return self._record(results)

    def _judge_image(
        self, name: str, sample: Sample, check: str, output: str, index: int, grid: list[int] | None,
        pair: tuple[np.ndarray, np.ndarray], diagnosis: dict[str, Any] | None,
    ) -> tuple[CheckResult, dict[str, Any] | None]:  # fmt: skip
        """One image's output judged; a failure is diagnosed once per sample (``diagnosis``, passed along)."""
        tolerance = self.tolerance(name)
        ref, cand = pair
        comparison = compare_tensors(ref, cand, atol=tolerance.vision_atol, rtol=tolerance.vision_rtol)
        verdict = judge_vision(comparison, tolerance)
        metrics = asdict(comparison)
        reasons = verdict.reasons if output == EMBEDDINGS else tuple(f"{output}: {r}" for r in verdict.reasons)
        if not verdict.passed:
            diagnosis = diagnosis if diagnosis is not None else self.diagnose_vision(name, sample)
            metrics.update(diagnosis)
            reasons = (*reasons, *_describe_diagnosis(diagnosis))
        histogram = error_histogram(ref, cand)
        series = {
            "output": output,
            "token_cosine": list(metrics.pop("token_cosines")),  # a plot series, not a gated scalar
            "grid": grid,
            "image": str(sample.images[index]) if index < len(sample.images) else None,
            "abs_err_histogram": asdict(histogram) if histogram is not None else None,
        }
        return CheckResult(name, check, sample.sample_id, index, verdict.passed, reasons, metrics, series), diagnosis

    def _merged_grids(self, sample: Sample) -> list[tuple[int, int]]:
        """(rows, cols) of image tokens per image, from the reference processor (for the report's heat maps)."""
        image_processor = self.runner(REFERENCE_PATH).processor.image_processor
        images = sample_images(sample, self.context.static_shape)
        grid_thw = image_processor(images=images, return_tensors="np")["image_grid_thw"]
        return [merged_patch_grid(tuple(grid), image_processor.merge_size) for grid in grid_thw.tolist()]

    def diagnose_vision(self, name: str, sample: Sample) -> dict[str, Any]:
        """Where an embedding mismatch starts: the first diverging vision block (PyTorch hooks vs the candidate's
        own block outputs) and, for ONNX on small inputs, whether the exporter or the runtime is at fault."""
        candidate, reference = self.runner(name), self.runner(REFERENCE_PATH)
        tolerance = self.tolerance(name)
        pixels = [runner.preprocess(sample)["pixel_values"].float().cpu().numpy() for runner in (reference, candidate)]
        diagnosis: dict[str, Any] = {"preprocessing_max_abs_err": compare_tensors(*pixels, 0.0, 0.0).max_abs_err}
        if hasattr(candidate, "vision_block_outputs"):
            pairs = zip(reference.vision_block_outputs(sample), candidate.vision_block_outputs(sample), strict=True)
            # scale-free (cosine, rel L2): the absolute limit is in units of the output embeddings, and a trained
            # tower's hidden states are larger (on the easy-VQA-trained fixtures ONNX Runtime's genuine block 1 failed
            # it, and a fault after the last block was blamed on block 1)
            comparisons = [compare_tensors(r, c, math.inf, 0.0) for r, c in pairs]
            block = first_failing(comparisons, tolerance)
            diagnosis["first_diverging_block"] = block
            diagnosis["block_max_abs_err"] = [c.max_abs_err for c in comparisons]
        reference_embeddings = self.embeddings(REFERENCE_PATH, sample)
        merge = self.context.source.config["vision_config"]["spatial_merge_size"]
        patches = sum(embedding.shape[0] for embedding in reference_embeddings) * merge**2
        if hasattr(candidate, "reference_evaluator_embeddings") and patches <= THIRD_OPINION_MAX_PATCHES:
            try:
                third = candidate.reference_evaluator_embeddings(sample)
            except ThirdOpinionUnavailableError as exc:  # the verdict stands; only this attribution is missing
                diagnosis["attribution"] = f"not applicable ({exc})"
                return diagnosis
            reference_named, third_named = self.vision_features(REFERENCE_PATH, sample).named(), third.named()
            exporter_ok = reference_named.keys() == third_named.keys() and all(
                len(third_named[output]) == len(images)
                and all(
                    judge_vision(compare_tensors(r, t, tolerance.vision_atol, tolerance.vision_rtol), tolerance).passed
                    for r, t in zip(images, third_named[output], strict=True)
                )
                for output, images in reference_named.items()
            )
            diagnosis["attribution"] = "onnxruntime" if exporter_ok else "exporter"
        return diagnosis

    def has_tensor_table(self, name: str) -> bool:
        """Whether path ``name``'s vision graph was derived tensor by tensor from the fp32 export (onnx-bf16,
        onnx-qdq), so every tensor can be judged against it (``check_tensors``)."""
        return getattr(self.runner(name), "derived_from_fp32", False)

    def tensor_table(self, name: str, sample: Sample) -> TensorTable:
        """Path ``name``'s per-tensor error table on ``sample``: every intermediate tensor and changed weight of its
        vision graph against the fp32 export it was derived from (each tensor's worst value over the graph's runs)."""
        runner = self.runner(name)
        if name not in self._probes:
            runner.prepare()
            probe = ActivationProbe(runner.float_twin(), runner.model_path)
            weights = [weight_error(w, location(w), ref, cand) for w, ref, cand in probe.weights()]
            self._probes[name] = probe, weights
        probe, weights = self._probes[name]
        order = {tensor: index for index, tensor in enumerate(probe.scopes)}
        rows = []
        for feeds in runner.graph_feeds(sample):
            for tensor, pair in probe.pairs(feeds).items():
                scope = probe.scopes.get(tensor, tensor)
                where = (location(scope), order.get(tensor, len(order)))
                rows.append(tensor_error(tensor, scope, *where, pair.reference, pair.candidate, pair.unrounded))
        return build_table(rows, weights)

    def check_tensors(self, name: str, sample: Sample) -> CheckResult:
        """Path ``name``'s per-tensor error table on ``sample``, judged by ``tensor_min_sqnr_db`` and
        ``weight_min_sqnr_db``; the worst rows and the per-block summary go to the report."""
        result = tensors_result(name, sample.sample_id, self.tensor_table(name, sample), self.tolerance(name))
        return self._record([result])[0]

    def check_tokens(self, name: str, sample: Sample) -> CheckResult:
        """Greedy tokens and teacher-forced distributions of path ``name`` vs ``original``."""
        tolerance = self.tolerance(name)
        refusal = self.image_token_count_error(name, sample)
        reference = self.generation(REFERENCE_PATH, sample)
        reference_forced = self.teacher_forced(REFERENCE_PATH, sample)
        if refusal is None:
            candidate, candidate_forced = self.generation(name, sample), self.teacher_forced(name, sample)
            kernel_error = self.kernel_error(name, sample)
        else:  # the LM cannot run: compare against no tokens and no distributions
            candidate = Generation(tokens=reference.tokens[:0], logits=reference.logits[:0])
            candidate_forced, kernel_error = reference_forced[:0], None
        tokens = compare_tokens(
            reference.tokens, candidate.tokens, reference.logits, candidate.logits, top_k=tolerance.top_k
        )
        teacher_forced = compare_teacher_forced(
            reference_forced, candidate_forced, reference.tokens, settled_p=tolerance.settled_p
        )
        verdict = judge_tokens(tokens, teacher_forced, tolerance, kernel_error)
        weight_errors = self.weight_errors(name) if refusal is None else []
        weight_reasons = judge_weights(weight_errors, tolerance.weight_max_rel_l2)
        upstream = self.upstream_differences(name, sample)  # what makes the LM's inputs or decoding differ
        metrics: dict[str, Any] = {**asdict(tokens), **asdict(teacher_forced), "kernel_max_abs_logit": kernel_error}
        metrics["weight_max_rel_l2"] = float(np.max([e.rel_l2 for e in weight_errors])) if weight_errors else None
        passed = verdict.passed and refusal is None and not weight_reasons and not upstream
        reasons = (*upstream, *verdict.reasons, *weight_reasons)
        if refusal is not None:
            reasons = (refusal,)
        elif not verdict.passed or weight_reasons:  # a kernel/format error is located against the float twin, the rest
            kernel_failed = kernel_error is not None and not kernel_error <= tolerance.kernel_max_abs_logit
            layers = self.diagnose_tokens(name, sample, against_twin=kernel_failed)
            metrics["decoder_state_rel_l2"] = list(layers.rel_l2)  # input embeddings, each layer, logits
            baseline = "the dequantized twin" if kernel_failed else "the reference"
            elsewhere = self._outside_the_lm(name, sample, upstream)
            reasons = (*reasons, _describe_layers(layers, kernel_error is not None, baseline, elsewhere))
        metrics["reference_tokens"] = reference.tokens.tolist()
        metrics["candidate_tokens"] = candidate.tokens.tolist()
        metrics["reference_text"] = self.decode(reference.tokens)
        metrics["candidate_text"] = self.decode(candidate.tokens)
        tokenizer = self.runner(REFERENCE_PATH).processor.tokenizer  # pieces keep special tokens: end-of-turn shows
        series = {
            "kl_per_step": list(metrics.pop("kl_per_step")),  # teacher-forced, on the reference's tokens
            "reference_pieces": [tokenizer.decode([token]) for token in reference.tokens.tolist()],
            "candidate_pieces": [tokenizer.decode([token]) for token in candidate.tokens.tolist()],
        }
        result = CheckResult(name, "tokens", sample.sample_id, None, passed, reasons, metrics, series)
        return self._record([result])[0]

    def image_token_count_error(self, name: str, sample: Sample) -> str | None:
        """Why the LM cannot take path ``name``'s image embeddings (a token count other than its prompt's image
        tokens), or None: checked before generating, so the check fails with this reason rather than a traceback."""
        if not sample.images:
            return None
        grid = self.model_inputs(name, sample)["image_grid_thw"]
        merge = self.context.source.config["vision_config"]["spatial_merge_size"]
        expected = (grid.prod(-1) // merge**2).tolist()
        produced = [embedding.shape[0] for embedding in self.embeddings(name, sample)]
        if produced == expected:
            return None
        return (
            f"image token count: the prompt has {expected} image token(s) per image but this path's vision encoder "
            f"gave {produced}; the language model cannot take them"
        )

    def upstream_differences(self, name: str, sample: Sample) -> tuple[str, ...]:
        """What differs before any weight is used, each a failure on its own: the prompt token ids (chat template,
        tokenizer) and generation config fields that change what a deployment generates (EOS ids, penalties,
        sampling, lengths). Checked first, so a divergence they cause is not blamed on the LM or the images."""
        prompt = self.prompt_difference(name, sample)
        drifts, origin = self.generation_drift(name)
        return (*([prompt] if prompt else []), *(drift.describe(str(origin)) for drift in drifts if drift.fails))

    def prompt_difference(self, name: str, sample: Sample) -> str | None:
        """Where path ``name``'s prompt token ids first differ from the reference's, or None."""
        reference = self.model_inputs(REFERENCE_PATH, sample)["input_ids"][0].tolist()
        candidate = self.model_inputs(name, sample)["input_ids"][0].tolist()
        if reference == candidate:
            return None
        position = next(
            (i for i, (ref, cand) in enumerate(zip(reference, candidate, strict=False)) if ref != cand),
            min(len(reference), len(candidate)),
        )
        ids = [ids[position] if position < len(ids) else "none" for ids in (reference, candidate)]
        where = getattr(self.runner(name).processor.tokenizer, "name_or_path", "") or name
        return (
            f"the prompt token ids differ at position {position} (reference {ids[0]}, candidate {ids[1]}; "
            f"{len(reference)} vs {len(candidate)} tokens): the chat template or tokenizer differs ({where})"
        )

    def generation_drift(self, name: str) -> tuple[list[GenerationDrift], Path]:
        """Path ``name``'s generation config against the reference's, and the file it comes from; the differences
        that only warn are logged once per path."""
        if name not in self._generation_drift:
            reference, _ = self.runner(REFERENCE_PATH).generation_config()
            candidate, origin = self.runner(name).generation_config()
            drifts = compare_generation_configs(reference, candidate)
            for drift in drifts:
                if not drift.fails:
                    log.warning("%s: %s", name, drift.describe(str(origin)))
            self._generation_drift[name] = drifts, origin
        return self._generation_drift[name]

    def _outside_the_lm(self, name: str, sample: Sample, upstream: tuple[str, ...]) -> str:
        """Where a token divergence comes from when the candidate's LM agrees with the reference's layer by layer."""
        if upstream:
            return "the difference(s) named above"
        reference, candidate = self.embeddings(REFERENCE_PATH, sample), self.embeddings(name, sample)
        if len(reference) == len(candidate) and all(map(np.array_equal, reference, candidate)):
            return (
                "decoding, not the weights: this path's image embeddings are identical to the reference's "
                "(generation settings or non-determinism)"
            )
        return "this path's image embeddings"

    def diagnose_tokens(self, name: str, sample: Sample, against_twin: bool = False) -> LayerDivergence:
        """Where a token mismatch starts: the candidate's LM and the reference's (or, for a kernel/format error, the
        candidate's dequantized float twin) run on the *reference's* inputs, image embeddings included, and compared
        state by state, so a fault in the LM is located and one in the vision is cleared. A state diverges beyond the
        baseline's own run-to-run error (run twice; ``parity.layers.noise_threshold``), not a fixed threshold."""
        reference, candidate = self.runner(REFERENCE_PATH), self.runner(name)
        baseline = candidate.dequantized_twin if against_twin else reference.language_model
        inputs = reference.language_inputs(sample)
        states = capture_decoder_states(baseline, inputs)
        threshold = noise_threshold(states, capture_decoder_states(baseline, inputs))
        return compare_layers(states, capture_decoder_states(candidate.language_model, inputs), threshold)

    def weight_errors(self, name: str) -> list[LinearError]:
        """Each LM linear of a quantized path against original's weights (none for paths without a float twin): a
        corrupted layer that the logit metrics average away is named here."""
        runner = self.runner(name)
        if not hasattr(runner, "weight_errors"):
            return []
        return runner.weight_errors(self.runner(REFERENCE_PATH).model)

    def kernel_error(self, name: str, sample: Sample) -> float | None:
        """Max |Δlogit| between a quantized path and its dequantized float twin (None for paths without one)."""
        runner = self.runner(name)
        if not hasattr(runner, "twin_score"):
            return None
        reference_tokens = self.generation(REFERENCE_PATH, sample).tokens
        twin = runner.twin_score(self.model_inputs(name, sample), reference_tokens)
        candidate = self.teacher_forced(name, sample)
        if twin.shape != candidate.shape or not np.isfinite(candidate).all():
            return float("nan")
        return float(np.abs(twin - candidate).max()) if twin.size else 0.0

    def decode(self, tokens: np.ndarray) -> str:
        """Text of generated tokens (reference tokenizer, special tokens dropped), for humans reading the report."""
        tokenizer = self.runner(REFERENCE_PATH).processor.tokenizer
        return tokenizer.decode(tokens.tolist(), skip_special_tokens=True)

    def _record(self, results: list[CheckResult]) -> list[CheckResult]:
        for result in results:
            self._results.setdefault(result.path, []).append(result)
        return results

    def run(self, samples: list[Sample], progress: bool = False, eval_set: EvalSet | None = None) -> ParityReport:
        """Every check of every candidate path on every sample, then (given ``eval_set``) each path's task accuracy
        against original's. ``progress``: a bar on a terminal, else log lines."""
        from vlparity.progress import bar, enabled

        steps = [(name, index, sample) for name in self.candidates for index, sample in enumerate(samples, start=1)]
        shown = progress and enabled()
        for name, index, sample in bar(steps, f"judging {', '.join(self.candidates)}") if shown else steps:
            if progress and not shown:
                log.info("%s: sample %d/%d %s", name, index, len(samples), sample.sample_id)
            if sample.images:
                self.check_vision(name, sample)
                if self.has_tensor_table(name):
                    self.check_tensors(name, sample)
            self.check_tokens(name, sample)
        if eval_set is not None:
            for name in self.candidates:
                self.check_accuracy(name, eval_set, progress)
        return self.report()

    def eval_answers(self, name: str, eval_set: EvalSet, progress: bool = False) -> tuple[list[str], int]:
        """Path ``name``'s greedy answer (decoded text) to every question of ``eval_set``, and how many it could not
        answer (its vision encoder gave another image token count than the prompt has: answered ``""``, i.e. wrong).

        Only tokens are kept (no logits, no per-sample parity checks: a nightly set has thousands of questions); one
        vision encode serves consecutive questions about the same image(s). Cached per path and spec."""
        from vlparity.progress import bar, enabled

        key = (name, eval_set.spec)
        if key not in self._eval_answers:
            runner = self.runner(name)
            merge = self.context.source.config["vision_config"]["spatial_merge_size"]
            shown = progress and enabled()
            if progress:
                log.info("%s: answering %d question(s) of eval set %s", name, len(eval_set), eval_set.spec)
            answers, unanswered = [], 0
            images, features = None, VisionFeatures()
            for item in bar(eval_set.items, f"eval {eval_set.spec} {name}") if shown else eval_set.items:
                inputs = runner.preprocess(item.sample)
                if item.sample.images != images:
                    images, features = item.sample.images, runner.vision_encode(inputs)
                if item.sample.images:
                    expected = (inputs["image_grid_thw"].prod(-1) // merge**2).tolist()
                    if [embedding.shape[0] for embedding in features.embeddings] != expected:
                        answers.append("")
                        unanswered += 1
                        continue
                generation = runner.generate(
                    item.sample, self.settings.max_new_tokens, runner.model_inputs_with(inputs, features)
                )
                answers.append(self.decode(generation.tokens))
            self._eval_answers[key] = answers, unanswered
        return self._eval_answers[key]

    def check_accuracy(self, name: str, eval_set: EvalSet, progress: bool = False) -> CheckResult:
        """Task accuracy of path ``name`` against ``original``'s on ``eval_set``: per-path accuracy, the paired delta
        with its 95 % CI and McNemar's p, the flipped answers, judged by ``max_accuracy_drop``; recorded."""
        tolerance = self.tolerance(name)
        reference, _ = self.eval_answers(REFERENCE_PATH, eval_set, progress)
        candidate, unanswered = self.eval_answers(name, eval_set, progress)
        comparison = compare_accuracy(
            [item.answer for item in eval_set.items],
            reference,
            candidate,
            questions=[item.sample.prompt for item in eval_set.items],
            images=[item.image_names for item in eval_set.items],
        )
        verdict = judge_accuracy(comparison.delta, tolerance)
        reasons = verdict.reasons
        if unanswered and not verdict.passed:
            reasons = (*reasons, f"{unanswered} question(s) unanswered: the image token count differs (see tokens)")
        metrics: dict[str, Any] = {
            "eval_set": eval_set.spec,
            **asdict(comparison.delta),
            "drop": comparison.delta.drop,
            "changed": comparison.changed,
            "unanswered": unanswered,
        }
        series = {"flips": [{**asdict(flip), "source": eval_set.items[flip.index].source} for flip in comparison.flips]}
        result = CheckResult(name, "accuracy", eval_set.spec, None, verdict.passed, reasons, metrics, series)
        return self._record([result])[0]

    def stage_durations(self) -> dict[str, dict[str, list[float]]]:
        """Seconds of every timed stage call, per path (what ``report``'s timing summaries are computed from)."""
        return {
            name: {stage: [record.seconds for record in records] for stage, records in runner.timer.records.items()}
            for name, runner in self._runners.items()
        }

    def report(self) -> ParityReport:
        source = self.context.source
        report = ParityReport(
            model=source.reference,
            model_type=source.model_type,
            device=str(self.context.device),
            dtype=dtype_name(self.context.dtype),
            reference=REFERENCE_PATH,
            versions=verdict_library_versions(),
            provenance=collect_provenance(),
        )
        for name in self.path_names:
            runner = self._runners.get(name)
            path_report = PathReport(
                name=name,
                description=runner.description if runner else "",
                checks=list(self._results.get(name, [])),
                tolerance_version=self._tolerances[name].version if name in self._tolerances else None,
            )
            if runner is not None:
                path_report.timings = {
                    stage: summarise_durations([record.seconds for record in records])
                    for stage, records in runner.timer.records.items()
                }
                path_report.memory = {
                    stage: summarise_memory([r.peak_rss_bytes for r in records], [r.cuda_peak_bytes for r in records])
                    for stage, records in runner.timer.records.items()
                }
                path_report.artefact_bytes = runner.artefact_bytes()
                path_report.details = runner.describe()
                if name in self._generation_drift:
                    drifts, origin = self._generation_drift[name]
                    path_report.details["generation_config"] = {
                        "file": str(origin),
                        "fails": [drift.describe(str(origin)) for drift in drifts if drift.fails],
                        "warns": [drift.describe(str(origin)) for drift in drifts if not drift.fails],
                    }
            report.paths[name] = path_report
        return report
