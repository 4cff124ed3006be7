"""``vlparity run --eval-set``: exit 0 when no path loses accuracy, 1 when one exceeds ``max_accuracy_drop`` (named),
2 for a bad eval set or a missing data set, before any model work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vlparity.cli import EXIT_PARITY_FAILURE, EXIT_PASS, EXIT_USAGE, main
from vlparity.eval_sets import EvalSet
from vlparity.inputs import fixture_images
from vlparity.report.model import SCHEMA_VERSION
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession

ROOT = Path(__file__).resolve().parents[2]
FAST = [
    "run", "--image", str(fixture_images()[0]), "--max-new-tokens", "4", "--device", "cpu", "--paths", "original,split",
    "--output-dir", str(ROOT / DEFAULT_CACHE_DIR),
]  # fmt: skip


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    """Three questions about fixture images; the answers need not be what the fixture says (accuracy is compared)."""
    images = fixture_images()
    lines = [
        {"image": str(images[0]), "question": "What is in the image?", "answer": "a blue circle"},
        {"image": str(images[1]), "question": "What color is the shape?", "answer": "green"},
        {"image": str(images[2]), "question": "What shape is it?", "answer": "square"},
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_clean_path_passes_and_every_rendering_shows_the_accuracy(
    eval_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    reports = {suffix: tmp_path / f"report.{suffix}" for suffix in ("json", "md", "html")}
    code = main([*FAST, "--eval-set", str(eval_file), *(f"--report-{k}={v}" for k, v in reports.items())])
    out = capsys.readouterr().out
    assert code == EXIT_PASS, out
    row = next(line for line in out.splitlines() if line.startswith("split") and " accuracy " in line)
    assert row.split()[2:5] == ["3", "0", "PASS"] and "drop 0/0" in row and "95 % CI [" in row
    assert f"eval set {eval_file}: original " in out and "0 flipped answer(s)" in out
    document = json.loads(reports["json"].read_text())
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["paths"]["split"]["accuracy"]["n"] == 3 and document["paths"]["split"]["accuracy"]["drop"] == 0
    assert document["paths"]["original"]["accuracy"]["n"] == 3
    assert document["paths"]["split"]["limits"]["max_accuracy_drop"] == 0.0
    assert "### Task accuracy on" in reports["md"].read_text()
    assert 'id="accuracy"' in reports["html"].read_text()


def test_a_path_that_loses_answers_fails_naming_the_key(
    eval_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The session's answers are replaced (original right, split wrong on every question): the CLI's verdict and exit
    code follow the accuracy check."""

    def planted(self: ParitySession, name: str, eval_set: EvalSet, progress: bool = False) -> tuple[list[str], int]:
        right = [item.answer for item in eval_set.items]
        return (right if name == "original" else [f"not {answer}" for answer in right]), 0

    monkeypatch.setattr(ParitySession, "eval_answers", planted)
    code = main([*FAST, "--eval-set", str(eval_file)])
    out = capsys.readouterr().out
    assert code == EXIT_PARITY_FAILURE, out
    assert "FAIL split accuracy" in out and "(max_accuracy_drop)" in out and "overall: FAIL" in out
    assert "split lost [" in out


@pytest.mark.parametrize(
    ("spec", "message"),
    [("easy-vqa[5]", "not a slice of easy-vqa"), ("nothing.jsonl", "nothing.jsonl: no such file")],
)
def test_a_bad_eval_set_exits_2_before_any_model_work(
    spec: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(ParitySession, "__post_init__", lambda self: pytest.fail("a model was loaded"))
    assert main([*FAST, "--eval-set", spec]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"vlparity: error: --eval-set {spec}" in err and message in err and "Traceback" not in err


def test_easy_vqa_without_the_data_set_exits_2_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "easy_vqa", None)
    assert main([*FAST, "--eval-set", "easy-vqa[:10]"]) == EXIT_USAGE
    assert "pip install 'vlparity[eval]'" in capsys.readouterr().err


def test_original_alone_prints_the_references_accuracy(eval_file: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "original",
        *FAST[1 : FAST.index("--paths")],
        *FAST[FAST.index("--output-dir") :],
        "--eval-set",
        str(eval_file),
    ]
    assert main(argv) == EXIT_PASS
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"eval set {eval_file}: original accuracy ") and last.endswith("% on 3 questions")
