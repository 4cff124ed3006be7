"""Contracts for artefacts built elsewhere: what fits is accepted, every misfit is refused naming expected vs found.

The ONNX cases use small synthetic graphs (what an Olive / ORT-GenAI / hand-written export could look like) so each
mismatch is one edit away from a model that passes; vlparity's own exports must pass the same contract.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import load_file, save_file

from vlparity.contracts import check_awq_dir, check_onnx_vision, check_split_dir
from vlparity.errors import ArtefactContractError
from vlparity.export.onnx_vision import ExportSettings
from vlparity.model_source import FIXTURES_DIR, resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import build_onnx_vision

WIDTH, HIDDEN = 3 * 2 * 14 * 14, 128  # fixture vision patch width and LM hidden size
# What vlparity's Qwen2-VL export takes: (element type, shape) per input.
QWEN2_VL_INPUTS = {
    "pixel_values": (TensorProto.FLOAT, ["patches", WIDTH]),
    "position_ids": (TensorProto.INT64, ["patches", 2]),
    "full_gather": (TensorProto.INT64, ["segments", "length"]),
    "full_valid": (TensorProto.BOOL, ["segments", "length"]),
    "full_scatter": (TensorProto.INT64, ["patches"]),
}


def context_for(family: str, cache: Path) -> PathContext:
    return PathContext(resolve_model(FIXTURES_DIR / family), torch.device("cpu"), torch.float32, cache)


@pytest.fixture
def qwen2_vl(tmp_path: Path) -> PathContext:
    return context_for("qwen2_vl", tmp_path / "cache")


def vision_graph(
    path: Path,
    inputs: dict[str, tuple[int, list]] = QWEN2_VL_INPUTS,
    output: tuple[str, list] = ("image_embeds", ["tokens", HIDDEN]),
    external_data: bool = False,
    metadata: dict[str, str] | None = None,
    width: int = WIDTH,
) -> Path:
    """A checker-valid stand-in for an external vision encoder: image_embeds = first input @ W."""
    name, shape = output
    weight = numpy_helper.from_array(np.zeros((width, shape[1]), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [next(iter(inputs)), "W"], [name])],
        "vision",
        [helper.make_tensor_value_info(key, dtype, dims) for key, (dtype, dims) in inputs.items()],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path), save_as_external_data=external_data, size_threshold=0, location="vision.onnx.data")
    return path


def test_a_graph_with_the_exporters_inputs_and_output_is_accepted(tmp_path: Path, qwen2_vl: PathContext) -> None:
    artefact = check_onnx_vision(vision_graph(tmp_path / "vision.onnx"), qwen2_vl)
    assert artefact.path == tmp_path / "vision.onnx" and artefact.data_files == () and artefact.block_outputs == 0


def test_index_inputs_may_be_omitted_by_a_graph_that_computes_them(tmp_path: Path, qwen2_vl: PathContext) -> None:
    only_pixels = {"pixel_values": QWEN2_VL_INPUTS["pixel_values"]}
    check_onnx_vision(vision_graph(tmp_path / "vision.onnx", only_pixels), qwen2_vl)


def _renamed(old: str, new: str) -> dict[str, tuple[int, list]]:
    return {new if key == old else key: value for key, value in QWEN2_VL_INPUTS.items()}


@pytest.mark.parametrize(
    ("inputs", "messages"),
    [
        (_renamed("position_ids", "pos_ids"), ["input pos_ids int64[?, 2] is not one vlparity can feed", "found:"]),
        (_renamed("pixel_values", "pixels"), ["input pixels", "no pixel_values input"]),
        ({**QWEN2_VL_INPUTS, "grid_thw": (TensorProto.INT64, [1, 3])}, ["input grid_thw int64[1, 3]"]),
        (
            {**QWEN2_VL_INPUTS, "position_ids": (TensorProto.INT32, ["patches", 2])},
            ["position_ids is int32[?, 2], expected int64[?, 2]"],
        ),
        (
            {**QWEN2_VL_INPUTS, "pixel_values": (TensorProto.FLOAT, [256, WIDTH])},
            ["pixel_values dim 0 is fixed at 256 but varies with the image size"],
        ),
    ],
    ids=["renamed-index-input", "renamed-pixel-values", "extra-input", "wrong-dtype", "fixed-image-size"],
)
def test_inputs_vlparity_cannot_feed_are_refused_listing_expected_and_found(
    tmp_path: Path, qwen2_vl: PathContext, inputs: dict, messages: list[str]
) -> None:
    path = vision_graph(tmp_path / "vision.onnx", inputs)
    with pytest.raises(ArtefactContractError) as error:
        check_onnx_vision(path, qwen2_vl)
    text = str(error.value)
    assert text.startswith(f"--onnx-vision {path}:")
    assert "Expected inputs" in text and "position_ids int64[?, 2]" in text
    for message in messages:
        assert message in text


def test_a_pixel_width_of_another_patch_size_is_refused(tmp_path: Path, qwen2_vl: PathContext) -> None:
    path = vision_graph(tmp_path / "vision.onnx", {"pixel_values": (TensorProto.FLOAT, ["patches", 588])}, width=588)
    with pytest.raises(ArtefactContractError, match=r"pixel_values dim 1 is 588, expected 1176"):
        check_onnx_vision(path, qwen2_vl)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (("last_hidden_state", ["tokens", HIDDEN]), "no output named image_embeds (found: last_hidden_state)"),
        (("image_embeds", ["tokens", 64]), "image_embeds dim 1 is 64, expected 128"),
    ],
    ids=["output-name", "output-width"],
)
def test_an_output_that_is_not_image_embeds_at_the_lm_width_is_refused(
    tmp_path: Path, qwen2_vl: PathContext, output: tuple[str, list], message: str
) -> None:
    path = vision_graph(tmp_path / "vision.onnx", output=output)
    with pytest.raises(ArtefactContractError) as error:
        check_onnx_vision(path, qwen2_vl)
    assert message in str(error.value)


def test_external_weight_data_is_found_next_to_the_model_or_refused(tmp_path: Path, qwen2_vl: PathContext) -> None:
    path = vision_graph(tmp_path / "vision.onnx", external_data=True)
    assert check_onnx_vision(path, qwen2_vl).data_files == (tmp_path / "vision.onnx.data",)
    (tmp_path / "vision.onnx.data").unlink()
    with pytest.raises(ArtefactContractError, match=r"external weight data unusable: vision.onnx.data \(missing\)"):
        check_onnx_vision(path, qwen2_vl)


def test_a_file_that_is_not_onnx_or_fails_the_checker_is_refused(tmp_path: Path, qwen2_vl: PathContext) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(ArtefactContractError, match="not an ONNX model"):
        check_onnx_vision(garbage, qwen2_vl)
    broken = vision_graph(tmp_path / "vision.onnx")
    model = onnx.load(str(broken))
    model.graph.node[0].input[1] = "undefined_weight"
    onnx.save(model, str(broken))
    with pytest.raises(ArtefactContractError, match=r"onnx\.checker rejects the model"):
        check_onnx_vision(broken, qwen2_vl)
    with pytest.raises(ArtefactContractError, match="no such file"):
        check_onnx_vision(tmp_path / "absent.onnx", qwen2_vl)


def test_an_export_stamped_for_another_family_is_refused(tmp_path: Path, qwen2_vl: PathContext) -> None:
    path = vision_graph(tmp_path / "vision.onnx", metadata={"model_type": "qwen2_5_vl"})
    with pytest.raises(ArtefactContractError, match="exported from a qwen2_5_vl model, --model is qwen2_vl"):
        check_onnx_vision(path, qwen2_vl)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_vlparitys_own_export_fits_the_contract(request: pytest.FixtureRequest, family: str) -> None:
    context = context_for(family, request.config.rootpath / ".vlparity-cache")  # shared: the export is reused
    directory = build_onnx_vision(context, ExportSettings("fp32"))
    depth = context.source.config["vision_config"]["depth"]
    assert check_onnx_vision(directory / "vision.onnx", context).block_outputs == depth


# --- AWQ checkpoints -------------------------------------------------------------------------------------------------

GENUINE_QUANT = {
    "bits": 4, "group_size": 128, "modules_to_not_convert": ["model.visual", "lm_head"], "quant_method": "awq",
    "version": "gemm", "zero_point": True,
}  # fmt: skip


def awq_dir(root: Path, family: str = "qwen2_5_vl", **quant: object) -> Path:
    """A checkpoint directory whose config.json is the fixture's plus ``quantization_config`` (weights: a stub)."""
    config = json.loads((FIXTURES_DIR / family / "config.json").read_text())
    config["quantization_config"] = {**GENUINE_QUANT, **quant}
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    save_file({"stub": torch.zeros(1)}, root / "model.safetensors")
    return root


def test_a_standard_awq_checkpoint_config_is_accepted(tmp_path: Path) -> None:
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    artefact = check_awq_dir(awq_dir(tmp_path / "awq", group_size=64), context)
    assert (artefact.directory, artefact.group_size, artefact.bits) == (tmp_path / "awq", 64, 4)


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"quant_method": "gptq"}, "quant_method is 'gptq', expected 'awq'"),
        ({"bits": 8}, "bits is 8, expected 4"),
        ({"version": "gemv"}, "version is 'gemv', expected 'gemm'"),
        ({"group_size": 96}, "group_size 96 does not divide the in-features of model.language_model.layers.0"),
        ({"modules_to_not_convert": ["visual"]}, "does not exclude the vision tower"),
    ],
    ids=["not-awq", "bits", "packing", "group-size", "vision-not-excluded"],
)
def test_awq_configs_that_would_misload_are_refused(tmp_path: Path, quant: dict, message: str) -> None:
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    with pytest.raises(ArtefactContractError) as error:
        check_awq_dir(awq_dir(tmp_path / "awq", **quant), context)
    assert str(error.value).startswith(f"--awq-model {tmp_path / 'awq'}:") and message in str(error.value)


def fixture_vision_weights(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The Qwen2.5-VL fixture's vision tensors as an AWQ checkpoint names them, cast to ``dtype``."""
    source = load_file(FIXTURES_DIR / "qwen2_5_vl" / "model.safetensors")
    return {f"model.{key}": value.to(dtype) for key, value in source.items() if key.startswith("visual.")}


def test_vision_weights_cast_to_the_folders_dtype_are_the_models(tmp_path: Path) -> None:
    """A float16 AWQ checkpoint of a float32 (or bfloat16) model holds the same vision weights, rounded."""
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    folder = awq_dir(tmp_path / "awq")
    save_file(fixture_vision_weights(torch.float16), folder / "model.safetensors")
    check_awq_dir(folder, context)


def test_vision_weights_one_float16_step_off_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    folder = awq_dir(tmp_path / "awq")
    weights = fixture_vision_weights(torch.float16)
    key = "model.visual.merger.mlp.0.weight"
    weights[key][0, 0] = torch.nextafter(weights[key][0, 0], torch.tensor(1.0, dtype=torch.float16))
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ArtefactContractError, match=f"differ from --model's \\(model.safetensors: {key}\\)"):
        check_awq_dir(folder, context)


def test_the_vision_remedy_names_the_prefixes_that_work(tmp_path: Path) -> None:
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    with pytest.raises(ArtefactContractError, match=r'set it to \["model.visual", "lm_head"\]'):
        check_awq_dir(awq_dir(tmp_path / "awq", modules_to_not_convert=["visual"]), context)


def test_an_awq_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    with pytest.raises(ArtefactContractError, match="model_type is 'qwen2_vl', --model is 'qwen2_5_vl'"):
        check_awq_dir(awq_dir(tmp_path / "awq", family="qwen2_vl"), context)


def test_an_awq_dir_without_quantization_config_or_weights_is_refused(tmp_path: Path) -> None:
    context = context_for("qwen2_5_vl", tmp_path / "cache")
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(FIXTURES_DIR / "qwen2_5_vl" / "config.json", plain / "config.json")
    with pytest.raises(ArtefactContractError, match="no quantization_config"):
        check_awq_dir(plain, context)
    weightless = awq_dir(tmp_path / "weightless")
    (weightless / "model.safetensors").unlink()
    with pytest.raises(ArtefactContractError, match=r"no \*.safetensors weights"):
        check_awq_dir(weightless, context)
    with pytest.raises(ArtefactContractError, match=r"no config\.json"):
        check_awq_dir(tmp_path / "absent", context)


# --- split directories -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[PathContext, Path]:
    """A split written by vlparity, then stripped of its manifest: what a user's own split looks like."""
    from vlparity.export.split import write_split
    from vlparity.paths.original import load_original

    context = context_for("qwen2_5_vl", tmp_path_factory.mktemp("cache"))
    model, processor = load_original(context)
    directory = write_split(model, processor, context.adapter, context.source, tmp_path_factory.mktemp("s") / "split")
    (directory / "manifest.json").unlink()
    return context, directory


@pytest.fixture
def split_copy(genuine_split: tuple[PathContext, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(genuine_split[1], tmp_path / "split"))


def test_a_split_in_vlparitys_layout_is_accepted_without_a_manifest(genuine_split: tuple[PathContext, Path]) -> None:
    context, directory = genuine_split
    assert check_split_dir(directory, context) == directory


def test_a_split_missing_a_file_is_refused_with_the_layout(
    genuine_split: tuple[PathContext, Path], split_copy: Path
) -> None:
    (split_copy / "vision" / "preprocessor_config.json").unlink()
    with pytest.raises(ArtefactContractError) as error:
        check_split_dir(split_copy, genuine_split[0])
    assert "missing vision/preprocessor_config.json" in str(error.value) and "language/: config.json" in str(
        error.value
    )


def test_a_split_with_a_wrongly_shaped_tensor_is_refused_naming_it(
    genuine_split: tuple[PathContext, Path], split_copy: Path
) -> None:
    weights = split_copy / "language" / "model.safetensors"
    tensors = load_file(weights)
    name = "model.language_model.layers.0.mlp.down_proj.weight"
    tensors[name] = tensors[name][:-1].clone()
    save_file(tensors, weights)
    with pytest.raises(ArtefactContractError, match=rf"{name} \[127, 256\] \(expected \[128, 256\]\)"):
        check_split_dir(split_copy, genuine_split[0])


def test_a_split_of_another_family_is_refused(genuine_split: tuple[PathContext, Path], tmp_path: Path) -> None:
    with pytest.raises(ArtefactContractError, match="model_type is 'qwen2_5_vl', --model is 'qwen2_vl'"):
        check_split_dir(genuine_split[1], context_for("qwen2_vl", tmp_path / "cache"))


def test_a_split_with_unreadable_weights_is_refused(genuine_split: tuple[PathContext, Path], split_copy: Path) -> None:
    weights = split_copy / "vision" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtefactContractError, match=r"vision/model\.safetensors is not a readable safetensors file"):
        check_split_dir(split_copy, genuine_split[0])
