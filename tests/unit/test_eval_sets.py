"""Eval sets (``--eval-set``): easy-VQA slices and the user's own JSONL, every bad input a typed error naming the file,
the line and the remedy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vlparity.errors import EvalSetError, UsageError
from vlparity.eval_sets import EASY_VQA_INSTALL, check_spec, load_eval_set, parse_easy_vqa_slice
from vlparity.inputs import fixture_images

IMAGE = fixture_images()[0]


def _jsonl(tmp_path: Path, *lines: object, name: str = "qa.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def _item(image: str = "img.png", question: str = "what shape is it?", answer: str = "square") -> dict:
    return {"image": image, "question": question, "answer": answer}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "img.png").write_bytes(IMAGE.read_bytes())
    return tmp_path


def test_a_jsonl_eval_set_resolves_images_against_its_folder_and_skips_blank_lines(
    folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = _jsonl(folder, _item(), "", _item(str(IMAGE), "what color?", "blue") | {"id": 7})
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # relative to the file, not to the working directory
    eval_set = load_eval_set(str(path))
    assert [item.sample.images for item in eval_set.items] == [(folder / "img.png",), (IMAGE,)]
    assert [(item.sample.prompt, item.answer) for item in eval_set.items] == [
        ("what shape is it?", "square"), ("what color?", "blue"),
    ]  # fmt: skip
    assert [item.source for item in eval_set.items] == ["qa.jsonl:1", "qa.jsonl:3"]
    assert eval_set.spec == str(path) and len(eval_set) == 2


def test_an_image_list_is_one_multi_image_question(folder: Path) -> None:
    eval_set = load_eval_set(str(_jsonl(folder, _item(image=["img.png", "img.png"]))))  # type: ignore[arg-type]
    assert eval_set.items[0].sample.images == (folder / "img.png",) * 2
    assert eval_set.items[0].image_names == "img.png+img.png"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"image": "img.png", "question": "q?"'], r"qa.jsonl:1: not valid JSON"),
        ([_item(), "[1, 2]"], r"qa.jsonl:2: a JSON list, not an object"),
        ([_item(), _item(), {"image": "img.png", "question": "q?"}], r"qa.jsonl:3: missing key\(s\) answer"),
        ([_item(answer="")], r"qa.jsonl:1: answer must be a non-empty string"),
        ([_item(question=3)], r"qa.jsonl:1: question must be a non-empty string"),  # type: ignore[arg-type]
        ([_item(image="missing.png")], r"qa.jsonl:1: image .*missing.png: no such file\. Image paths are relative"),
        ([_item(image="notes.png")], r"qa.jsonl:1: image .*notes.png: not a readable image"),
        ([_item(question="<|image_pad|> what?")], r"qa.jsonl:1: the question .*vision marker"),
        (["", "   "], r"qa.jsonl: holds no question"),
    ],
    ids=["bad-json", "not-an-object", "missing-key", "empty-answer", "question-not-text", "missing-image",
         "unreadable-image", "vision-marker", "empty"],
)  # fmt: skip
def test_bad_input_is_an_eval_set_error_naming_the_file_and_line(folder: Path, lines: list, message: str) -> None:
    (folder / "notes.png").write_text("not an image")
    with pytest.raises(EvalSetError, match=message) as raised:
        load_eval_set(str(_jsonl(folder, *lines)))
    assert str(raised.value).startswith("--eval-set ")


def test_a_missing_file_or_another_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match=r"no\.jsonl: no such file"):
        load_eval_set(str(tmp_path / "no.jsonl"))
    with pytest.raises(EvalSetError, match=r"not an eval set\. Use easy-vqa"):
        load_eval_set(str(tmp_path / "qa.csv"))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("easy-vqa", slice(None, None)), ("easy-vqa[:40]", slice(None, 40)), ("easy-vqa[10:20]", slice(10, 20)),
     ("easy-vqa[5:]", slice(5, None))],
)  # fmt: skip
def test_easy_vqa_slices(spec: str, expected: slice) -> None:
    assert parse_easy_vqa_slice(spec) == expected
    check_spec(spec)


@pytest.mark.parametrize("spec", ["easy-vqa[5]", "easy-vqa[-5:]", "easy-vqa[a:b]", "easy-vqa[:4", "easy-vqa-train"])
def test_a_bad_easy_vqa_slice_is_refused_before_loading(spec: str) -> None:
    with pytest.raises(EvalSetError, match=r"not a slice of easy-vqa.*easy-vqa\[:40\]"):
        check_spec(spec)


def test_easy_vqa_is_the_test_split_in_file_order() -> None:
    easy_vqa = pytest.importorskip("easy_vqa")
    questions, answers, image_ids = easy_vqa.get_test_questions()
    eval_set = load_eval_set("easy-vqa[3:8]")
    assert [item.sample.prompt for item in eval_set.items] == questions[3:8]
    assert [item.answer for item in eval_set.items] == answers[3:8]
    assert [item.sample.images[0].stem for item in eval_set.items] == [str(i) for i in image_ids[3:8]]
    assert eval_set.items[0].source == "easy-vqa test #3"
    assert load_eval_set("easy-vqa[3:8]") == eval_set  # deterministic


def test_an_easy_vqa_slice_past_the_end_is_an_error() -> None:
    pytest.importorskip("easy_vqa")
    with pytest.raises(EvalSetError, match=r"selects no question \(the test split has 9673\)"):
        load_eval_set("easy-vqa[20000:]")


def test_easy_vqa_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "easy_vqa", None)  # import easy_vqa now raises ImportError
    with pytest.raises(UsageError, match=r"not installed\. Install it with pip install 'vlparity\[eval\]'"):
        load_eval_set("easy-vqa[:4]")
    assert EASY_VQA_INSTALL == "pip install 'vlparity[eval]'"


def test_the_harness_imports_no_eval_data_set() -> None:
    """easy-VQA is a dependency of the accuracy suite, not of the harness: nothing imports it until a spec names it."""
    import subprocess

    code = "import vlparity.cli, vlparity.eval_sets, vlparity.session, sys; print('easy_vqa' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
