"""Shared objects for the benchmarks: the model of the chosen ``--perf-size``, prepared runners, sample images, the
machine's GEMM peaks, and a closing table of speed ratios against the reference path."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from vlparity.inputs import Sample, fixture_images, fixture_prompts
from vlparity.model_source import resolve_model
from vlparity.paths import PATHS, REFERENCE_PATH, PathContext, PathRunner, create_path
from vlparity.perf.real_size import build_real_size_model
from vlparity.perf.roofline import RoofProbe
from vlparity.pytest_plugin import settings_from_config
from vlparity.quantize.awq import AwqSettings
from vlparity.runtime.ort import OrtOptions

REAL_IMAGE_SIDES = (448, 896)


def awq_available() -> bool:
    try:
        import awq  # noqa: F401
        import gptqmodel  # noqa: F401
    except ImportError:
        return False
    return True


# Language-model variants benchmarked beside the paths (prefill, decode, generate): the AWQ LM in float32 with
# bfloat16 activations into its int4 GEMMs, the fast gptqmodel CPU kernel (vlparity.quantize.awq).
LM_VARIANTS = {"awq:bf16-gemm": ("awq", {"gemm_activations": torch.bfloat16})}


def available_paths() -> list[str]:
    return [name for name in PATHS if "awq" not in name or awq_available()]


def available_lm_paths() -> list[str]:
    """Paths plus language-model variants, for the stages that run the LM."""
    return available_paths() + (list(LM_VARIANTS) if awq_available() else [])


def distinct_lm_paths() -> list[str]:
    """One path per distinct language model, plus the variants: for prefill and decode, which run only the LM. The
    ONNX paths load split's or awq's LM with the same loader, so timing them again measured the same model twice (at
    real size the fp16 AWQ prefill alone is minutes a round)."""
    by_loader: dict[object, str] = {}
    for name in available_paths():
        by_loader.setdefault(getattr(PATHS[name], "_load_language", name), name)
    return list(by_loader.values()) + [name for name in available_lm_paths() if name in LM_VARIANTS]


def awq_settings_for(perf_size: str) -> AwqSettings:
    """Real size: no clip search. Measured: AutoAWQ's clip search (elementwise, memory-bound) spent > 30 min on layer 0
    of the real-size LM slice on 2 CPU cores (20 GB RSS); the weights are random, the format and kernels the same."""
    return AwqSettings(apply_clip=perf_size != "real")


def prepared_runner(name: str, context: PathContext, perf_size: str) -> PathRunner:
    """A prepared runner for a path or an ``LM_VARIANTS`` name, with the profile's AWQ settings."""
    path, attributes = LM_VARIANTS.get(name, (name, {}))
    runner = create_path(path, context)
    if "awq" in path:
        runner.awq_settings = awq_settings_for(perf_size)
    for attribute, value in attributes.items():
        setattr(runner, attribute, value)
    runner.prepare()
    return runner


@pytest.fixture(scope="session")
def perf_size(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("perf_size")


@pytest.fixture(scope="session")
def perf_context(request: pytest.FixtureRequest, perf_size: str) -> PathContext:
    """CPU or CUDA per ``--device`` (float32), artefacts in the run's cache dir, model per ``--perf-size``."""
    from vlparity.devices import resolve_device

    settings = settings_from_config(request.config)
    family = request.config.getoption("perf_family")
    model = build_real_size_model(settings.cache_dir, family=family) if perf_size == "real" else settings.model
    threads = request.config.getoption("perf_threads")
    if threads:
        torch.set_num_threads(threads)
    return PathContext(resolve_model(model), resolve_device(settings.device), torch.float32, settings.cache_dir,
                       ort=OrtOptions(threads=threads))  # fmt: skip


@pytest.fixture(scope="session")
def fixture_context(request: pytest.FixtureRequest) -> PathContext:
    """Always the bundled fixture on CPU (for benchmarks that compare variants at fixed, small dimensions)."""
    settings = settings_from_config(request.config)
    return PathContext(resolve_model(None), torch.device("cpu"), torch.float32, settings.cache_dir)


@pytest.fixture(scope="module")
def runner_for(perf_context: PathContext, perf_size: str) -> Iterator[Callable[[str], PathRunner]]:
    """Prepared runners (artefacts come from / go to the cache). Only the reference and the latest other path stay
    loaded: at real size each holds 4–8 GB, and all eight at once ran out of 24 GiB (measured: killed). Tests are
    ordered path by path (``pytest_collection_modifyitems``), so each path loads once; all are dropped with the
    module, before the next module's benchmarks need the memory."""
    runners: dict[str, PathRunner] = {}

    def get(name: str) -> PathRunner:
        if name not in runners:
            for loaded in [loaded for loaded in runners if loaded != REFERENCE_PATH]:
                del runners[loaded]
            gc.collect()
            runners[name] = prepared_runner(name, perf_context, perf_size)
        return runners[name]

    yield get
    runners.clear()
    gc.collect()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the stage benchmarks path by path (stage order kept within a path), so ``runner_for`` loads each path once;
    pytest-benchmark still groups the results by stage."""
    order = {name: index for index, name in enumerate(available_lm_paths())}

    def position(item: pytest.Item) -> int:
        params = getattr(item, "callspec", None)
        path = params.params.get("path") if params else None
        return order[path] + 1 if Path(item.path).name == "test_stages.py" and path in order else 0

    items.sort(key=position)


@pytest.fixture(scope="session")
def perf_images(perf_size: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny: one fixture image; real: a fixture image resized to 448² and 896² (no downscaling by the processor)."""
    source = fixture_images()[0]
    if perf_size == "tiny":
        return {source.stem: source}
    folder = tmp_path_factory.mktemp("perf-images")
    images = {}
    for side in REAL_IMAGE_SIDES:
        images[f"{side}px"] = folder / f"{side}px.png"
        Image.open(source).convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(images[f"{side}px"])
    return images


@pytest.fixture(scope="session")
def perf_sample(perf_images: dict[str, Path]) -> Sample:
    """The sample the language-model stages run: the first (smallest) image with the first fixture prompt."""
    return Sample((next(iter(perf_images.values())),), fixture_prompts()[0])


ROOF_PROBE = pytest.StashKey[RoofProbe]()


@pytest.fixture(scope="session")
def roof_probe(request: pytest.FixtureRequest) -> RoofProbe:
    """The run's GEMM roof probes (each vision benchmark is bracketed by two); their spread closes the run."""
    return request.config.stash.setdefault(ROOF_PROBE, RoofProbe())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Median of every benchmark as a multiple of the reference path's in the same group (speed-up > 1), and how far
    the GEMM roof moved during the run."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [bench for bench in getattr(session, "benchmarks", []) if bench.stats and bench.group]
    _speedup_summary(terminalreporter, benchmarks)
    for bench in benchmarks:
        if "cost_per_linear_flop_vs_448px" in bench.extra_info:
            terminalreporter.section("large images (target: about 2× or less)")
            terminalreporter.write_line(
                f"{bench.name}: {bench.extra_info['cost_per_linear_flop_vs_448px']:.2f}× the time per linear FLOP "
                "of 448px"
            )
    spread = config.stash[ROOF_PROBE].spread() if ROOF_PROBE in config.stash else {}
    if spread:
        terminalreporter.section("GEMM roof probes (GFLOP/s, this run)")
        for kind, (count, low, high) in spread.items():
            terminalreporter.write_line(f"{kind}: {count} probes, {low:.1f} – {high:.1f} (max/min {high / low:.2f})")


def _speedup_summary(terminalreporter: pytest.TerminalReporter, benchmarks: list) -> None:
    lines = []
    for group in sorted({bench.group for bench in benchmarks}):
        members = {bench.extra_info.get("path"): bench for bench in benchmarks if bench.group == group}
        reference = members.get(REFERENCE_PATH)
        if reference is None or len(members) < 2:
            continue
        ratios = ", ".join(
            f"{path} {reference.stats.median / bench.stats.median:.2f}×"
            for path, bench in members.items()
            if path not in (None, REFERENCE_PATH)
        )
        lines.append(f"{group}: {ratios}")
    if lines:
        terminalreporter.section("speed-up over original (median, same run)")
        for line in lines:
            terminalreporter.write_line(line)
