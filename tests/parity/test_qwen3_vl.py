"""Qwen3-VL: the DeepStack features travel through every path beside the image embeddings and are judged level by
level, on the trained fixture (``fixtures/qwen3_vl``: patch 16, a learned 16×16 position table, three DeepStack
levels into LM layers 0-2, tied embeddings, interleaved MRoPE), so a token that moves is a verdict, not noise.

The planted faults are the ones the family invites in the field: a level dropped to zeros (a split that forgot
DeepStack), two levels swapped (outputs bound by position), and the position table resampled nearest-neighbour
instead of bilinear (a hand-written interpolation)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch

from tests.checkpoints import build_qwen3_vl_checkpoint
from tests.samples import FIRST_PROMPT, IMAGES
from vlparity import cli
from vlparity.adapters import adapter_for
from vlparity.adapters.qwen3_vl import Qwen3_VLAdapter
from vlparity.errors import UnsupportedModelError
from vlparity.inputs import Sample
from vlparity.model_source import FIXTURES_DIR
from vlparity.paths.split import SplitPath
from vlparity.report.model import CheckResult
from vlparity.session import ParitySession
from vlparity.vision_features import VisionFeatures

MAX_NEW_TOKENS = 4
SAMPLES = [Sample((IMAGES[3],), FIRST_PROMPT), Sample((IMAGES[0], IMAGES[3]), FIRST_PROMPT)]


@pytest.fixture(scope="module")
def qwen3_session(parity_session: ParitySession) -> ParitySession:
    settings = dataclasses.replace(
        parity_session.settings,
        model=str(FIXTURES_DIR / "qwen3_vl"),
        paths=("original", "split", "onnx"),
        max_new_tokens=MAX_NEW_TOKENS,
    )
    return ParitySession(settings)


def judged(session: ParitySession, path: str) -> list[CheckResult]:
    return [result for sample in SAMPLES for result in session.check_vision(path, sample)]


def test_the_reference_hands_the_lm_every_deepstack_level(qwen3_session: ParitySession) -> None:
    features = qwen3_session.vision_features("original", SAMPLES[1])
    assert list(features.named()) == ["image_embeds", "deepstack_0", "deepstack_1", "deepstack_2"]
    for level in features.deepstack:
        assert [x.shape for x in level] == [x.shape for x in features.embeddings]


@pytest.mark.parametrize("path", ["split", "onnx"])
def test_every_output_is_judged_on_its_own_and_passes(qwen3_session: ParitySession, path: str) -> None:
    results = judged(qwen3_session, path)
    outputs = {(result.check, result.series["output"]) for result in results}
    assert outputs == {("vision", "image_embeds")} | {("deepstack", f"deepstack_{level}") for level in range(3)}
    assert len(results) == 4 * sum(len(sample.images) for sample in SAMPLES)
    failed = [f"{r.series['output']}: {r.reasons}" for r in results if not r.passed]
    assert not failed, failed


def test_split_is_bit_exact_on_every_level_and_token(qwen3_session: ParitySession) -> None:
    for result in judged(qwen3_session, "split"):
        assert result.metrics["max_abs_err"] == 0.0, result.series["output"]
    for sample in SAMPLES:
        assert qwen3_session.check_tokens("split", sample).passed


def test_the_onnx_graph_outputs_every_deepstack_level(qwen3_session: ParitySession) -> None:
    runner = qwen3_session.runner("onnx")
    assert runner.feature_outputs == ["image_embeds", "deepstack_0", "deepstack_1", "deepstack_2"]
    for sample in SAMPLES:
        assert qwen3_session.check_tokens("onnx", sample).passed


# --- planted faults ---------------------------------------------------------------------------------------------------


def _planted(session: ParitySession, plant: Callable[[VisionFeatures], VisionFeatures]) -> ParitySession:
    """A fresh session whose split path hands the LM ``plant(features)`` instead of its own."""

    class Planted(SplitPath):
        def _encode(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> VisionFeatures:
            return plant(super()._encode(pixel_values, grid_thw))

    fresh = ParitySession(dataclasses.replace(session.settings, paths=("original", "split")))
    fresh.use_runner(session.runner("original"))
    fresh.use_runner(Planted(fresh.context))
    return fresh


def _failed_outputs(session: ParitySession) -> dict[str, list[str]]:
    failed: dict[str, list[str]] = {}
    for result in judged(session, "split"):
        if not result.passed:
            failed.setdefault(result.series.get("output", "?"), []).extend(result.reasons)
    return failed


def test_a_zeroed_deepstack_level_fails_naming_that_level(qwen3_session: ParitySession) -> None:
    def zero_level_1(features: VisionFeatures) -> VisionFeatures:
        levels = list(features.deepstack)
        levels[1] = [torch.zeros_like(x) for x in levels[1]]
        return VisionFeatures(features.embeddings, tuple(levels))

    failed = _failed_outputs(_planted(qwen3_session, zero_level_1))
    assert list(failed) == ["deepstack_1"]
    assert failed["deepstack_1"][0].startswith("deepstack_1: "), failed


def test_two_swapped_deepstack_levels_fail_naming_both(qwen3_session: ParitySession) -> None:
    def swap_0_and_2(features: VisionFeatures) -> VisionFeatures:
        first, middle, last = features.deepstack
        return VisionFeatures(features.embeddings, (last, middle, first))

    assert sorted(_failed_outputs(_planted(qwen3_session, swap_0_and_2))) == ["deepstack_0", "deepstack_2"]


def test_a_missing_deepstack_level_fails_naming_it(qwen3_session: ParitySession) -> None:
    failed = _failed_outputs(_planted(qwen3_session, lambda f: VisionFeatures(f.embeddings, f.deepstack[:2])))
    assert list(failed) == ["deepstack_2"] and "missing" in failed["deepstack_2"][0]


def test_a_nearest_neighbour_position_table_fails_the_embeddings(qwen3_session: ParitySession) -> None:
    """Each patch takes its nearest table entry (the largest of its four bilinear weights set to one)."""

    class NearestAdapter(Qwen3_VLAdapter):
        def grid_inputs(self, grid_thw: torch.Tensor, vision_config) -> dict[str, torch.Tensor]:
            inputs = super().grid_inputs(grid_thw, vision_config)
            weights = inputs["interp_weights"]
            nearest = torch.zeros_like(weights).scatter_(1, weights.argmax(1, keepdim=True), 1.0)
            return {**inputs, "interp_weights": nearest}

    fresh = ParitySession(dataclasses.replace(qwen3_session.settings, paths=("original", "split")))
    fresh.use_runner(qwen3_session.runner("original"))
    split = SplitPath(fresh.context)
    split.context = dataclasses.replace(fresh.context)
    split.context.__dict__["adapter"] = NearestAdapter()  # the cached_property, replaced for this runner only
    fresh.use_runner(split)
    failed = _failed_outputs(fresh)
    assert "image_embeds" in failed and all(f"deepstack_{level}" in failed for level in range(3))


# --- configuration and contract ---------------------------------------------------------------------------------------


def test_the_family_is_recognised_from_model_type() -> None:
    assert isinstance(adapter_for("qwen3_vl"), Qwen3_VLAdapter)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("num_position_embeddings", 50, "square"),
        ("deepstack_visual_indexes", [0, 9], "outside the tower's 4 blocks"),
    ],
)
def test_a_config_the_tower_cannot_run_is_refused_naming_the_field(field: str, value: object, named: str) -> None:
    config = {"patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "depth": 4,
              "num_position_embeddings": 64, "deepstack_visual_indexes": [0, 1, 2], field: value}  # fmt: skip
    with pytest.raises(UnsupportedModelError, match=f"vision_config.{field}.*{named}"):
        Qwen3_VLAdapter().check_vision_config(config, "config.json")


def test_an_lm_with_fewer_layers_than_deepstack_levels_is_refused(
    qwen3_session: ParitySession, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """transformers adds level k after LM layer k: with 3 layers, level 2 lands after the last and reaches no token."""
    model = build_qwen3_vl_checkpoint(qwen3_session.settings.cache_dir, lm_layers=3)
    code = cli.main(["run", "--model", str(model), "--image", str(IMAGES[3]), "--device", "cpu",
                     "--output-dir", str(qwen3_session.settings.cache_dir)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    assert "text_config.num_hidden_layers is 3 for 3 DeepStack levels" in err and "Traceback" not in err


def test_the_lm_is_never_fed_embeddings_without_their_deepstack_levels() -> None:
    with pytest.raises(ValueError, match="DeepStack"):
        Qwen3_VLAdapter().encoder_outputs(VisionFeatures([torch.zeros(4, 8)]))


# --- bring your own ONNX vision encoder -------------------------------------------------------------------------------


def _external_onnx(session: ParitySession, target: Path, edit: Callable[[onnx.ModelProto], None]) -> Path:
    """vlparity's own Qwen3-VL export, edited with the onnx API and saved elsewhere without a manifest."""
    model = onnx.load(str(session.runner("onnx").model_path))
    edit(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def _run_onnx(session: ParitySession, external: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    argv = ["run-onnx", "--model", str(session.context.source.directory), "--onnx-vision", str(external),
            "--image", str(IMAGES[3]), "--max-new-tokens", "4", "--device", "cpu",
            "--output-dir", str(session.settings.cache_dir)]  # fmt: skip
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_external_export_without_the_deepstack_outputs_exits_2_naming_them(
    qwen3_session: ParitySession, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def drop_deepstack(model: onnx.ModelProto) -> None:
        kept = [value for value in model.graph.output if not value.name.startswith("deepstack_")]
        del model.graph.output[:]
        model.graph.output.extend(kept)

    external = _external_onnx(qwen3_session, tmp_path / "hub" / "vision.onnx", drop_deepstack)
    code, out, err = _run_onnx(qwen3_session, external, capsys)
    assert code == cli.EXIT_USAGE and out == "", err
    assert "no output named deepstack_0, deepstack_1, deepstack_2" in err and "DeepStack" in err


def test_an_external_export_with_two_levels_bound_swapped_fails_naming_them(
    qwen3_session: ParitySession, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def swap_names(model: onnx.ModelProto) -> None:
        renames = {"deepstack_0": "deepstack_1", "deepstack_1": "deepstack_0"}
        for value in model.graph.output:
            value.name = renames.get(value.name, value.name)
        for node in model.graph.node:
            node.output[:] = [renames.get(name, name) for name in node.output]

    external = _external_onnx(qwen3_session, tmp_path / "hub" / "vision.onnx", swap_names)
    code, out, err = _run_onnx(qwen3_session, external, capsys)
    assert code == cli.EXIT_PARITY_FAILURE, err
    assert "deepstack_0: " in out and "deepstack_1: " in out and "deepstack_2: " not in out


def test_the_awq_paths_quantize_the_lm_and_pass_with_every_deepstack_level(qwen3_session: ParitySession) -> None:
    pytest.importorskip("awq")
    session = ParitySession(dataclasses.replace(qwen3_session.settings, paths=("original", "awq", "awq+onnx")))
    session.use_runner(qwen3_session.runner("original"))
    report = session.run(SAMPLES[:1])
    failed = [f"{c.path} {c.check}: {c.reasons}" for path in report.candidates for c in path.checks if not c.passed]
    assert not failed, failed
    kinds = {(path.name, check.check) for path in report.candidates for check in path.checks}
    assert {("awq", "deepstack"), ("awq+onnx", "deepstack"), ("awq", "tokens"), ("awq+onnx", "tokens")} <= kinds
