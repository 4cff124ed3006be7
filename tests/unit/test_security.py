"""Security: nothing is ever unpickled, a checkpoint's own code runs only with --trust-remote-code, and names taken
from inputs never place a file outside the directory it belongs in."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
import shutil
import sys
from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import save_file

from tests.unit.report_samples import build_report
from tests.unit.test_contracts import context_for, vision_graph
from vlparity.adapters import adapter_for
from vlparity.bundle.builder import write_language
from vlparity.cli import EXIT_PASS, main
from vlparity.contracts import check_onnx_vision
from vlparity.errors import UnsafePathError
from vlparity.inputs import fixture_images
from vlparity.model_source import FIXTURES_DIR
from vlparity.report import write_report
from vlparity.safe_paths import safe_join

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vlparity"
# Standalone scripts shipped in bundles: they run without vlparity, on transformers' default (trust_remote_code=None
# refuses a checkpoint's code unless a person at a terminal accepts it).
BUNDLE_TEMPLATES = PACKAGE / "bundle" / "templates"
PICKLE_MODULES = frozenset({"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve"})


# --- no pickle anywhere -----------------------------------------------------------------------------------------------


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unpickling(source: str, filename: str = "<source>") -> list[str]:
    """Every place in ``source`` that can unpickle: pickle-family imports, ``torch.load`` without
    ``weights_only=True``, ``numpy.load`` with ``allow_pickle`` not ``False``, ``pandas.read_pickle``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name → what it was imported as (``np`` → ``numpy``)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({alias.asname or alias.name: alias.name for alias in node.names})
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
            modules = [node.module]
        else:
            continue
        findings += [
            f"{filename}:{node.lineno}: imports {module}"
            for module in modules
            if module.split(".")[0] in PICKLE_MODULES
        ]
    for node in ast.walk(tree):
        name = _dotted(node.func) if isinstance(node, ast.Call) else None
        if name is None:
            continue
        head, _, rest = name.partition(".")
        name = ".".join(filter(None, [aliases.get(head, head), rest]))
        unsafe = (
            (name == "torch.load" and not _keyword_is(node, "weights_only", True))
            or (name == "numpy.load" and any(k.arg == "allow_pickle" for k in node.keywords)
                and not _keyword_is(node, "allow_pickle", False))
            or name == "pandas.read_pickle"
            or name.split(".")[0] in PICKLE_MODULES
        )  # fmt: skip
        if unsafe:
            findings.append(f"{filename}:{node.lineno}: {name}(…)")
    return findings


def python_files(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in root.rglob("*.py"))


def test_the_package_and_the_fixture_builders_never_unpickle() -> None:
    files = python_files(PACKAGE, FIXTURES_DIR)
    assert len(files) > 50
    assert [finding for path in files for finding in unpickling(path.read_text(), str(path.relative_to(ROOT)))] == []


@pytest.mark.parametrize(
    ("source", "finding"),
    [
        ("import pickle", "imports pickle"),
        ("import cPickle as p", "imports cPickle"),
        ("from joblib import load", "imports joblib"),
        ("import dill.settings", "imports dill.settings"),
        ("import pickle as p\np.loads(b'')", "pickle.loads(…)"),
        ("import torch\ntorch.load('w.pt')", "torch.load(…)"),
        ("import torch\ntorch.load('w.pt', weights_only=False)", "torch.load(…)"),
        ("import torch as t\nt.load('w.pt', map_location='cpu')", "torch.load(…)"),
        ("from torch import load\nload('w.pt')", "torch.load(…)"),
        ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "numpy.load(…)"),
        ("import pandas as pd\npd.read_pickle('frame.pkl')", "pandas.read_pickle(…)"),
    ],
)
def test_the_scanner_finds_planted_unpickling(source: str, finding: str) -> None:
    assert f"<source>:{source.count(chr(10)) + 1}: {finding}" in unpickling(source)  # on the snippet's last line


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('w.pt', weights_only=True)",
        "import numpy as np\nnp.load('a.npy')\nnp.load('b.npy', allow_pickle=False)",
        "import json\njson.load(open('a.json'))",
        "from safetensors.torch import load_file\nload_file('model.safetensors')",
    ],
)
def test_the_scanner_accepts_safe_loading(source: str) -> None:
    assert unpickling(source) == []


# --- trust_remote_code ------------------------------------------------------------------------------------------------


def from_pretrained_calls_without_trust(path: Path) -> list[str]:
    """``*.from_pretrained(…)`` calls that do not pass ``trust_remote_code=`` (or pass a literal True)."""
    calls = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]
    return [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for call in calls
        if isinstance(call.func, ast.Attribute) and call.func.attr == "from_pretrained"
        if not any(k.arg == "trust_remote_code" for k in call.keywords) or _keyword_is(call, "trust_remote_code", True)
    ]


def test_every_from_pretrained_in_the_package_is_told_whether_to_trust_remote_code() -> None:
    files = [path for path in python_files(PACKAGE) if not path.is_relative_to(BUNDLE_TEMPLATES)]
    assert [call for path in files for call in from_pretrained_calls_without_trust(path)] == []


def spy_on_from_pretrained(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Record (class, trust_remote_code) of every ``from_pretrained`` that vlparity's own code calls."""
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, GenerationConfig, PreTrainedModel

    calls: list[tuple[str, object]] = []
    for cls in (PreTrainedModel, AutoConfig, AutoProcessor, AutoImageProcessor, GenerationConfig):
        original = inspect.getattr_static(cls, "from_pretrained").__func__

        def spy(klass: type, *args: object, __original=original, **kwargs: object) -> object:
            if sys._getframe(1).f_globals.get("__name__", "").startswith("vlparity."):
                calls.append((klass.__name__, kwargs.get("trust_remote_code", "absent")))
            return __original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    return calls


@pytest.mark.parametrize(("flag", "trusted"), [([], False), (["--trust-remote-code"], True)], ids=["default", "flag"])
def test_trust_remote_code_reaches_every_load_only_when_asked(
    flag: list[str], trusted: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    calls = spy_on_from_pretrained(monkeypatch)
    argv = ["split", "--image", str(fixture_images()[0]), "--max-new-tokens", "1", "--device", "cpu"]
    assert main([*argv, "--output-dir", str(ROOT / ".vlparity-cache"), *flag]) == EXIT_PASS
    loaded = {name for name, _ in calls}
    assert {"Qwen2_5_VLForConditionalGeneration", "AutoProcessor", "AutoImageProcessor", "AutoConfig"} <= loaded
    assert {value for _, value in calls} == {trusted}


# --- path traversal ---------------------------------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the bundle")
    (tmp_path / "root").mkdir()
    return secret


@pytest.mark.parametrize("name", ["../secret.txt", "a/../../secret.txt", "/etc/passwd", "", "link-out"])
def test_safe_join_refuses_a_name_that_leads_out(tmp_path: Path, outside: Path, name: str) -> None:
    root = tmp_path / "root"
    (root / "link-out").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=re.escape(f"{name!r}: ")):
        safe_join(root, name, "unit")


@pytest.mark.parametrize("name", ["config.json", "language/model.safetensors", "link-in"])
def test_safe_join_accepts_a_name_inside(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    (root / "language").mkdir(parents=True)
    (root / "link-in").symlink_to(root / "language")
    assert safe_join(root, name) == root / name


def test_a_bundle_never_copies_a_file_a_symlink_in_the_artefact_leads_to(tmp_path: Path, outside: Path) -> None:
    artefact = tmp_path / "root"
    save_file({"model.language_model.norm.weight": torch.ones(2)}, artefact / "model.safetensors")
    shutil.copy(FIXTURES_DIR / "qwen2_5_vl" / "config.json", artefact / "config.json")
    (artefact / "notes.txt").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"'notes.txt': .* resolves to .*secret.txt, outside"):
        write_language(adapter_for("qwen2_5_vl"), artefact, tmp_path / "bundle" / "language", quantized=False)
    assert not (tmp_path / "bundle" / "language" / "notes.txt").exists()


def test_an_onnx_model_cannot_point_its_external_data_outside_its_folder(tmp_path: Path) -> None:
    path = vision_graph(tmp_path / "vision.onnx", external_data=True)
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    onnx.save(model, str(path))
    with pytest.raises(UnsafePathError, match=re.escape("external data location '../../etc/passwd'")):
        check_onnx_vision(path, context_for("qwen2_vl", tmp_path / "cache"))


@pytest.mark.parametrize("suffix", [".json", ".md", ".html"])
def test_a_report_writes_its_one_file_whatever_the_sample_and_path_names(tmp_path: Path, suffix: str) -> None:
    """Sample ids and path names come from inputs; they are rendered as text, never turned into file names."""
    report = build_report()
    for path in report.paths.values():
        path.name = f"../{path.name}"
        path.checks = [dataclasses.replace(check, sample_id=f"../../{check.sample_id}") for check in path.checks]
    target = tmp_path / "out" / f"report{suffix}"
    write_report(report, target)
    assert [os.path.relpath(p, tmp_path) for p in sorted(tmp_path.rglob("*"))] == ["out", f"out/report{suffix}"]
