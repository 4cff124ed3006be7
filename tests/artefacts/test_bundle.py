"""Standalone bundles: both scripts run as subprocesses and are held to the HF processor and to the library's paths.

The vision script runs with torch, transformers and vlparity made unimportable, the language script with vlparity
made unimportable, so "needs only …" is checked at run time as well as by reading the imports.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.bundle import BUNDLE_KIND, build_bundle
from vlparity.bundle.builder import TEMPLATES_DIR
from vlparity.bundle.templates import vision_inference
from vlparity.errors import UsageError
from vlparity.inputs import Sample, preprocess
from vlparity.manifest import verify_manifest
from vlparity.model_source import FIXTURE_FAMILIES, FIXTURES_DIR, resolve_model
from vlparity.parity.tensors import compare_tensors
from vlparity.parity.tolerances import tolerance_for
from vlparity.parity.verdict import judge_vision
from vlparity.paths.awq import AwqOnnxPath
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import OnnxPath

MAX_NEW_TOKENS = 16
PIXEL_ATOL = 1e-6
VISION_ONLY = {"numpy", "onnxruntime", "PIL"}
LANGUAGE_ONLY = {"torch", "transformers", "numpy"}
# Runs a script with some top-level packages made unimportable (``sys.modules[name] = None``).
BOOTSTRAP = (
    "import runpy, sys\n"
    "for name in filter(None, sys.argv[1].split(',')): sys.modules[name] = None\n"
    "sys.argv = sys.argv[2:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@dataclass(frozen=True)
class Bundle:
    root: Path
    context: PathContext
    family: str

    @property
    def vision_script(self) -> Path:
        return self.root / "vision" / "vision_inference.py"

    @property
    def language_script(self) -> Path:
        return self.root / "language" / "language_inference.py"


def fixture_context(family: str, cache_dir: Path) -> PathContext:
    return PathContext(resolve_model(FIXTURES_DIR / family), torch.device("cpu"), torch.float32, cache_dir)


def run_script(script: Path, args: list[str], blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", BOOTSTRAP, ",".join(blocked), str(script), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{script.name} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result


def run_vision(script: Path, images: tuple[Path, ...], out: Path, *extra: str) -> Path:
    args = [arg for image in images for arg in ("--image", str(image))]
    run_script(script, [*args, "--output-dir", str(out), *extra], blocked=("torch", "transformers", "vlparity"))
    return out


def run_language(bundle: Bundle, vision_out: Path | None, prompt: str, out: Path) -> dict:
    args = ["--prompt", prompt, "--max-new-tokens", str(MAX_NEW_TOKENS), "--output", str(out)]
    if vision_out is not None:
        args += ["--vision-output", str(vision_out)]
    run_script(bundle.language_script, args, blocked=("vlparity",))
    return json.loads(out.read_text())


def preprocessing_mismatches(vision_out: Path, model_dir: Path, images: tuple[Path, ...]) -> list[str]:
    """What differs between the script's ``pixel_values``/grid and the HF processor's for the same image files."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(model_dir)
    expected = processor(images=[Image.open(path) for path in images], return_tensors="np")
    grid = np.asarray(json.loads((vision_out / "grid.json").read_text())["image_grid_thw"])
    pixels = np.load(vision_out / "pixel_values.npy")
    problems = []
    if not np.array_equal(grid, expected["image_grid_thw"]):
        problems.append(f"image_grid_thw {grid.tolist()} != processor {expected['image_grid_thw'].tolist()}")
    elif pixels.shape != expected["pixel_values"].shape:
        problems.append(f"pixel_values shape {pixels.shape} != processor {expected['pixel_values'].shape}")
    elif (error := float(np.abs(pixels - expected["pixel_values"]).max())) > PIXEL_ATOL:
        problems.append(f"pixel_values max |Δ| {error:.3g} > {PIXEL_ATOL:g}")
    return problems


@pytest.fixture(scope="module", params=FIXTURE_FAMILIES)
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    context = fixture_context(request.param, request.config.rootpath / ".vlparity-cache")
    root = build_bundle(context, tmp_path_factory.mktemp("bundle") / request.param)
    return Bundle(root, context, request.param)


@pytest.fixture(scope="module")
def vision_config(bundle: Bundle) -> object:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(bundle.context.source.directory).vision_config


@pytest.fixture(scope="module")
def onnx_path(bundle: Bundle) -> OnnxPath:
    return OnnxPath(bundle.context)


@pytest.fixture(scope="module")
def every_image_output(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One vision run over every fixture image (odd sizes included), with its inputs saved."""
    return run_vision(bundle.vision_script, tuple(IMAGES), tmp_path_factory.mktemp("vision"), "--save-inputs")


# --- layout and refusals ------------------------------------------------------------------------------------------


def test_bundle_is_complete_and_matches_its_manifest(bundle: Bundle) -> None:
    manifest = verify_manifest(bundle.root, BUNDLE_KIND)
    assert manifest["model_type"] == bundle.family and manifest["quantized"] is False
    expected = {
        "README.md",
        "vision/vision.onnx", "vision/preprocess.json", "vision/vision_inference.py", "vision/requirements.txt",
        "language/config.json", "language/generation_config.json", "language/model.safetensors",
        "language/tokenizer.json", "language/tokenizer_config.json", "language/chat_template.jinja",
        "language/language_inference.py", "language/requirements.txt",
    }  # fmt: skip
    assert expected <= set(manifest["files"])


def test_language_half_holds_no_vision_weights(bundle: Bundle) -> None:
    from safetensors import safe_open

    with safe_open(bundle.root / "language" / "model.safetensors", framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and not [key for key in keys if key.startswith(bundle.context.adapter.vision_prefix)]


def test_refuses_a_non_empty_output_dir_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    context = fixture_context("qwen2_5_vl", tmp_path / "empty-cache")
    with pytest.raises(UsageError, match=r"taken.*not empty.*delete this one first"):
        build_bundle(context, target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and not (tmp_path / "empty-cache").exists()


def test_refuses_a_file_as_output_dir(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.write_text("")
    with pytest.raises(UsageError, match="is a file"):
        build_bundle(fixture_context("qwen2_5_vl", tmp_path / "cache"), target)


def test_interrupted_build_leaves_nothing_behind(
    bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object) -> str:
        raise RuntimeError("interrupted")

    monkeypatch.setattr("vlparity.bundle.builder.render_readme", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        build_bundle(bundle.context, tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("template", "allowed"), [("vision_inference.py", VISION_ONLY), ("language_inference.py", LANGUAGE_ONLY)]
)
def test_script_imports_only_its_runtime_and_the_stdlib(template: str, allowed: set[str]) -> None:
    tree = ast.parse((TEMPLATES_DIR / template).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    top_level = {name.split(".")[0] for name in imported} - {"__future__"}
    assert top_level - sys.stdlib_module_names <= allowed, top_level - sys.stdlib_module_names - allowed
    assert allowed & top_level, "the test must see the script's imports"


# --- vision half ----------------------------------------------------------------------------------------------------


def test_numpy_preprocessing_equals_the_processor(bundle: Bundle, every_image_output: Path) -> None:
    assert preprocessing_mismatches(every_image_output, bundle.context.source.directory, tuple(IMAGES)) == []


@pytest.mark.parametrize(
    ("key", "value", "reported"),
    [
        ("image_mean", [0.48245466, 0.4578275, 0.40821073], "pixel_values max"),  # +0.001 on red
        ("resample", "bilinear", "pixel_values max"),
        ("max_pixels", 50176, "image_grid_thw"),
    ],
)
def test_planted_preprocessing_fault_is_caught(
    bundle: Bundle, tmp_path: Path, key: str, value: object, reported: str
) -> None:
    vision_dir = shutil.copytree(bundle.root / "vision", tmp_path / "vision")
    config = json.loads((vision_dir / "preprocess.json").read_text())
    config[key] = value
    (vision_dir / "preprocess.json").write_text(json.dumps(config))
    images = (IMAGES[1],)  # 640x480: downscaled, and large enough for the max_pixels fault to change the grid
    out = run_vision(vision_dir / "vision_inference.py", images, tmp_path / "out", "--save-inputs")
    problems = preprocessing_mismatches(out, bundle.context.source.directory, images)
    assert len(problems) == 1 and problems[0].startswith(reported), problems


def test_index_inputs_equal_the_adapters(bundle: Bundle, vision_config: object, every_image_output: Path) -> None:
    fed = dict(np.load(every_image_output / "onnx_inputs.npz"))
    grid = torch.tensor(json.loads((every_image_output / "grid.json").read_text())["image_grid_thw"])
    expected = bundle.context.adapter.export_inputs(grid, vision_config)
    assert set(fed) == {"pixel_values", *expected}
    for name, array in expected.items():
        assert fed[name].dtype == array.dtype and np.array_equal(fed[name], array), name


def test_every_vision_output_within_the_onnx_tolerance(
    bundle: Bundle, onnx_path: OnnxPath, every_image_output: Path
) -> None:
    """The embeddings and, for Qwen3-VL, every DeepStack level the script writes."""
    tolerance = tolerance_for("onnx")
    outputs = onnx_path.encode_images(Sample(tuple(IMAGES), FIRST_PROMPT)).named()
    written = ["image_embeds.npy", *json.loads((every_image_output / "grid.json").read_text())["deepstack"]]
    assert written == [f"{name}.npy" for name in outputs]
    for name, images in outputs.items():
        candidate = np.load(every_image_output / f"{name}.npy")
        comparison = compare_tensors(np.concatenate(images), candidate, tolerance.vision_atol, tolerance.vision_rtol)
        verdict = judge_vision(comparison, tolerance)
        assert verdict.passed, (name, verdict.reasons)
        assert comparison.rel_l2 <= tolerance.vision_max_rel_l2, name


grids = st.lists(st.tuples(st.integers(1, 24), st.integers(1, 24)), min_size=1, max_size=3)


@given(merged=grids)
def test_index_inputs_equal_the_adapters_for_any_grid(
    bundle: Bundle, vision_config: object, merged: list[tuple[int, int]]
) -> None:
    config = json.loads((bundle.root / "vision" / "preprocess.json").read_text())
    merge = config["vision"]["spatial_merge_size"]
    grid = np.asarray([[1, h * merge, w * merge] for h, w in merged], dtype=np.int64)
    mine = vision_inference.graph_inputs(np.zeros((0, 1), np.float32), grid, config)
    for name, array in bundle.context.adapter.export_inputs(torch.from_numpy(grid), vision_config).items():
        assert np.array_equal(mine[name], array), name


sides = st.integers(2, 320)


@given(height=sides, width=sides, out_height=sides, out_width=sides, seed=st.integers(0, 2**16))
@pytest.mark.parametrize("resample", ["bicubic", "bilinear"])
def test_resize_equals_torchvision_uint8_antialias(
    resample: str, height: int, width: int, out_height: int, out_width: int, seed: int
) -> None:
    from torchvision.transforms.v2 import functional as tvF

    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    mode = tvF.InterpolationMode.BICUBIC if resample == "bicubic" else tvF.InterpolationMode.BILINEAR
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    expected = tvF.resize(tensor, [out_height, out_width], interpolation=mode, antialias=True)
    actual = vision_inference.resize_uint8(pixels, out_height, out_width, resample)
    assert np.array_equal(actual, expected.permute(1, 2, 0).numpy())


# --- language half --------------------------------------------------------------------------------------------------

TOKEN_SAMPLES = [
    Sample((IMAGES[2],), FIRST_PROMPT),
    Sample((IMAGES[0], IMAGES[-1]), "Compare the two images."),
    Sample((), FIRST_PROMPT),
]


@pytest.mark.slow
@pytest.mark.parametrize("sample", TOKEN_SAMPLES, ids=[s.sample_id for s in TOKEN_SAMPLES])
def test_tokens_identical_to_the_onnx_path(bundle: Bundle, onnx_path: OnnxPath, sample: Sample, tmp_path: Path) -> None:
    vision_out = run_vision(bundle.vision_script, sample.images, tmp_path / "vision") if sample.images else None
    result = run_language(bundle, vision_out, sample.prompt, tmp_path / "tokens.json")
    onnx_path.prepare()
    expected_ids = preprocess(onnx_path.processor, sample)["input_ids"][0].tolist()
    assert result["input_ids"] == expected_ids, "the prompt (chat template + image placeholders) differs"
    assert result["tokens"] == onnx_path.generate(sample, MAX_NEW_TOKENS).tokens.tolist()


@pytest.mark.slow
def test_readme_commands_run_as_written(bundle: Bundle, tmp_path: Path) -> None:
    root = shutil.copytree(bundle.root, tmp_path / "bundle")
    readme = (root / "README.md").read_text()
    block = re.search(r"## Run\n\n```bash\n(.*?)```", readme, re.S).group(1).replace("\\\n", " ")
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert [command[:2] for command in commands] == [
        ["python", "vision/vision_inference.py"],
        ["python", "language/language_inference.py"],
    ]
    for command in commands:
        args = [str(IMAGES[2]) if arg == "IMAGE.png" else arg for arg in command[1:]]
        result = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads((root / "tokens.json").read_text())["tokens"]


@pytest.mark.slow
def test_quantized_bundle_tokens_identical_to_the_awq_onnx_path(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytest.importorskip("gptqmodel")
    pytest.importorskip("awq")
    context = fixture_context("qwen2_5_vl", request.config.rootpath / ".vlparity-cache")
    root = build_bundle(context, tmp_path_factory.mktemp("awq") / "bundle", quantize=True)
    assert verify_manifest(root, BUNDLE_KIND)["quantized"] is True
    assert "quantization_config" in json.loads((root / "language" / "config.json").read_text())
    bundle = Bundle(root, context, "qwen2_5_vl")
    sample = TOKEN_SAMPLES[0]
    out = tmp_path_factory.mktemp("awq-run")
    result = run_language(bundle, run_vision(bundle.vision_script, sample.images, out / "vision"), sample.prompt,
                          out / "tokens.json")  # fmt: skip
    assert result["tokens"] == AwqOnnxPath(context).generate(sample, MAX_NEW_TOKENS).tokens.tolist()
