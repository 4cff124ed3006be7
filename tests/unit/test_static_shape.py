"""``--static-shape WxH`` (issue #18): a fixed-shape opset-17 vision export, every image resized to W×H for every
path, sizes the processor would change refused with the nearest valid ones, a mis-sized feed refused by name."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity import cli
from vlparity.errors import InputShapeError
from vlparity.export.onnx_vision import MODEL_NAME, OPSET, STATIC_OPSET, ExportSettings
from vlparity.inputs import Sample, preprocess
from vlparity.paths.onnx import OnnxPath, onnx_cache_dir
from vlparity.session import ParitySession
from vlparity.static_shape import StaticShape, parse_static_shape

SQUARE, WIDE = StaticShape(224, 224), StaticShape(336, 224)


@pytest.mark.parametrize(("text", "shape"), [("448x448", StaticShape(448, 448)), (" 336X224 ", WIDE)])
def test_parses_width_by_height(text: str, shape: StaticShape) -> None:
    assert parse_static_shape(text) == shape


@pytest.mark.parametrize("text", ["448", "448x", "x448", "0x224", "-28x28", "448*448", "abc"])
def test_malformed_values_are_argparse_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
        parse_static_shape(text)


@pytest.mark.parametrize(
    ("value", "broken", "nearest"),
    [
        ("300x224", "300 not a multiple of 28", "Nearest valid: 308x224, 280x224."),
        ("450x448", "450 not a multiple of 28; W·H = 201600 pixels outside 12544–200704", "Nearest valid: 448x448."),
        ("56x56", "W·H = 3136 pixels outside 12544–200704", "Nearest valid: 112x112."),
        ("abc", "'abc': expected WIDTHxHEIGHT in pixels", ""),
    ],
)
def test_a_size_the_processor_would_change_is_a_usage_error_naming_the_nearest_valid(
    value: str, broken: str, nearest: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["export-onnx", "--static-shape", value, "--output-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert broken in err and nearest in err
    assert not (tmp_path / "onnx").exists(), "nothing is exported for a refused size"


@pytest.mark.parametrize("command", ["run", "run-onnx", "export-onnx"])
def test_the_option_is_one_definition_shared_by_run_and_export(command: str) -> None:
    args = cli.build_parser().parse_args([command, "--static-shape", "448x448"])
    assert args.static_shape == StaticShape(448, 448)
    assert cli.settings_from_args(args, ("original",)).static_shape == StaticShape(448, 448)


@pytest.fixture(scope="module")
def base_session(parity_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(parity_session.settings, paths=("original", "onnx")))


def test_cache_keys_separate_static_exports_from_the_dynamic_one(base_session: ParitySession) -> None:
    context = base_session.context
    settings = [
        ExportSettings("fp32"),
        ExportSettings("fp32", static_shape=SQUARE),
        ExportSettings("fp32", static_shape=WIDE),
    ]
    directories = [onnx_cache_dir(context, s) for s in settings]
    assert len(set(directories)) == 3
    assert [s.opset for s in settings] == [OPSET, STATIC_OPSET, STATIC_OPSET] == [18, 17, 17]
    assert [s.key()["static_shape"] for s in settings] == ["dynamic", "224x224", "336x224"]
    assert "224x224-opset17" in directories[1].name


@pytest.mark.parametrize("shape", [SQUARE, WIDE, StaticShape(448, 112)], ids=str)
def test_the_processor_keeps_a_valid_static_shape(base_session: ParitySession, shape: StaticShape) -> None:
    """Every image arrives at W×H and the processor does not resize it again: one grid, whatever the image's size."""
    processor = base_session.runner("original").processor
    for image in (IMAGES[1], IMAGES[6]):  # 640x480, 896x112
        grid = preprocess(processor, Sample((image,), FIRST_PROMPT), shape)["image_grid_thw"]
        assert grid.tolist() == [[1, shape.height // 14, shape.width // 14]]


@pytest.fixture(scope="module", params=[SQUARE, WIDE], ids=str)
def static_session(request: pytest.FixtureRequest, base_session: ParitySession) -> ParitySession:
    return ParitySession(dataclasses.replace(base_session.settings, static_shape=request.param))


def test_export_is_opset_17_with_every_input_fixed(static_session: ParitySession) -> None:
    runner = static_session.runner("onnx")
    shape = static_session.context.static_shape
    model = onnx.load(str(runner.onnx_dir / MODEL_NAME), load_external_data=False)
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [("", 17)]
    dims = {
        i.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
    assert all(isinstance(d, int) and d > 0 for shape_ in dims.values() for d in shape_), dims
    patches = shape.width * shape.height // 14**2
    assert dims["pixel_values"] == [patches, 3 * 2 * 14 * 14]
    assert {"full_gather", "window_gather", "window_index"} <= set(dims), "segment layouts are fixed inputs too"
    assert {p.key: p.value for p in model.metadata_props}["static_shape"] == str(shape)
    assert runner.session.fixed_shape and f"-{shape}-opset17-" in runner.onnx_dir.name


def test_static_export_matches_original_at_its_size(static_session: ParitySession) -> None:
    """Every fixture image (any size: resized to W×H for both sides) and a two-image prompt, run one image at a time
    through the fixed-shape graph."""
    samples = [Sample((image,), FIRST_PROMPT) for image in IMAGES] + [Sample((IMAGES[0], IMAGES[5]), FIRST_PROMPT)]
    results = [result for sample in samples for result in static_session.check_vision("onnx", sample)]
    assert len(results) == len(IMAGES) + 2
    assert all(result.passed for result in results), [result.reasons for result in results if not result.passed]
    details = static_session.report().paths["onnx"].details
    assert details["static_shape"] == str(static_session.context.static_shape) and details["opset"] == 17


def test_third_opinion_runs_the_fixed_shape_graph(static_session: ParitySession) -> None:
    runner: OnnxPath = static_session.runner("onnx")
    sample = Sample((IMAGES[3],), FIRST_PROMPT)
    (third,) = runner.reference_evaluator_embeddings(sample).embeddings
    (reference,) = static_session.embeddings("original", sample)
    assert np.abs(third - reference).max() <= static_session.tolerance("onnx").vision_atol


def test_a_feed_of_another_size_is_refused_naming_both_shapes(static_session: ParitySession) -> None:
    runner: OnnxPath = static_session.runner("onnx")
    shape = static_session.context.static_shape
    other = WIDE if shape == SQUARE else SQUARE
    inputs = preprocess(runner.processor, Sample((IMAGES[0],), FIRST_PROMPT), other)
    expected, given = shape.width * shape.height // 196, other.width * other.height // 196
    with pytest.raises(InputShapeError) as raised:
        runner.session.run(runner.feeds(inputs["pixel_values"], inputs["image_grid_thw"]), ["image_embeds"])
    message = str(raised.value)
    assert f"[{expected}, 1176]" in message and f"[{given}, 1176]" in message
    assert f"--static-shape {shape}" in message and str(runner.onnx_dir) in message
