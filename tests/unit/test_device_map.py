"""``--device-map auto``: the language model of the original, split and AWQ paths is placed by accelerate (for models
larger than one device). Its plumbing is tested on the CPU, where accelerate places everything on the CPU: each load
is asked for the placement and the paths still agree with the reference exactly as without it."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import torch

from vlparity.cli import build_parser, main, settings_from_args
from vlparity.devices import check_device_map
from vlparity.errors import UsageError
from vlparity.inputs import Sample, fixture_images, fixture_prompts
from vlparity.pytest_plugin import settings_from_config
from vlparity.session import ParitySession, RunSettings

pytest_plugins = ["pytester"]
SHARED_CACHE = Path(__file__).resolve().parents[2] / ".vlparity-cache"  # the parity suite's: split and AWQ are reused
ORIGINAL = ["original", "--image", str(fixture_images()[0]), "--max-new-tokens", "4", "--device", "cpu"]
on_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="accelerate would place the LM on the GPU")
needs_awq = pytest.mark.skipif(importlib.util.find_spec("awq") is None, reason="AutoAWQ is not installed")


def spy_on_model_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The ``device_map`` of every model ``from_pretrained`` call (concrete classes and the Auto classes)."""
    from transformers import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    device_maps: list[object] = []
    for cls in (PreTrainedModel, _BaseAutoModelClass):
        original = inspect.getattr_static(cls, "from_pretrained").__func__

        def spy(klass: type, *args: object, __original=original, **kwargs: object) -> object:
            device_maps.append(kwargs.get("device_map"))
            return __original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    return device_maps


def cli_settings(flag: list[str], _: pytest.Pytester) -> RunSettings:
    return settings_from_args(build_parser().parse_args(["run", *flag]), ("original",))


def plugin_settings(flag: list[str], pytester: pytest.Pytester) -> RunSettings:
    return settings_from_config(pytester.parseconfig(*(item.replace("--", "--vlparity-", 1) for item in flag)))


@pytest.mark.parametrize("front_end", [cli_settings, plugin_settings], ids=["cli", "pytest plugin"])
@pytest.mark.parametrize(
    ("flag", "expected"),
    [([], (None, False)), (["--device-map", "auto"], ("auto", False)), (["--trust-remote-code"], (None, True))],
    ids=["defaults", "device map", "trust remote code"],
)
def test_both_front_ends_pass_device_map_and_trust_remote_code_to_the_run(
    front_end, flag: list[str], expected: tuple, pytester: pytest.Pytester
) -> None:
    settings = front_end(flag, pytester)
    assert (settings.device_map, settings.trust_remote_code) == expected


@pytest.mark.parametrize(
    ("device_map", "device", "cuda", "message"),
    [
        ("everywhere", "cpu", False, "--device-map 'everywhere' is not one of none, auto, balanced"),
        ("auto", "cpu", True, "--device-map auto places the language model on the GPUs, but --device is cpu"),
    ],
    ids=["unknown strategy", "GPUs while inputs stay on the CPU"],
)
def test_a_device_map_that_cannot_work_is_a_usage_error(
    device_map: str, device: str, cuda: bool, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with pytest.raises(UsageError, match=message):
        check_device_map(device_map, torch.device(device))


@on_cpu_only
def test_the_original_loads_through_accelerate_and_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    device_maps = spy_on_model_loads(monkeypatch)
    argv = [*ORIGINAL, "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main([*argv, "--device-map", "auto"]) == 0
    assert capsys.readouterr().out == plain
    assert device_maps == [None, "auto"]


# What each language model load is asked for on a CPU-only machine: accelerate's "auto" for the original (through
# from_pretrained) and for the split LM (dispatch_model after a meta-device build); the AWQ loader passes the CPU
# placement, because gptqmodel picks a GPU kernel for any accelerate strategy, even without CUDA.
LOADS = {"split": ({"auto"}, {"": "cpu"}), "awq": ({"auto", "cpu"}, None)}


@on_cpu_only
@pytest.mark.parametrize("path", ["split", pytest.param("awq", marks=needs_awq)])
def test_each_language_model_is_placed_by_accelerate_and_still_agrees_with_the_reference(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    device_maps = spy_on_model_loads(monkeypatch)
    settings = RunSettings(
        device="cpu", paths=("original", path), max_new_tokens=4, cache_dir=SHARED_CACHE, device_map="auto"
    )
    session = ParitySession(settings)
    report = session.run([Sample((fixture_images()[0],), fixture_prompts()[0])])
    assert report.passed
    model_loads, split_placement = LOADS[path]
    assert {device_map for device_map in device_maps if device_map is not None} == model_loads
    assert getattr(session.runner(path).language_model, "hf_device_map", None) == split_placement
