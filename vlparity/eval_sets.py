"""Eval sets: questions with reference answers, scored on every path (``--eval-set``; the task-accuracy check).

A spec is one of

* ``easy-vqa`` — the easy-VQA test split (9,673 questions on 1,000 images of 64×64 px), in file order;
* ``easy-vqa[:N]`` / ``easy-vqa[A:B]`` — a slice of it, Python slice semantics (deterministic: the same questions in the
  same order on every machine);
* a ``.jsonl`` file, one JSON object per line: ``{"image": "cat.png", "question": "what is it?", "answer": "a cat"}``.
  ``image`` is a path relative to the JSONL file's folder (or absolute), or a list of them for a multi-image question;
  other keys are ignored, blank lines skipped.

easy-VQA is a dependency of the accuracy suite, not of the harness: ``easy_vqa`` is imported only when a spec names it
(``pip install 'vlparity[eval]'``). Every image is opened while the set is loaded, so a bad line fails before any
model work, with an ``EvalSetError`` naming the file and line and the remedy (exit 2 on the command line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlparity.errors import EvalSetError, InputFileError, UsageError
from vlparity.inputs import Sample, check_prompt, load_image

EASY_VQA = "easy-vqa"
EASY_VQA_INSTALL = "pip install 'vlparity[eval]'"
_EASY_VQA_SLICE = re.compile(r"^easy-vqa(?:\[(?P<start>\d*):(?P<stop>\d*)\])?$")
JSONL_KEYS = ("image", "question", "answer")


@dataclass(frozen=True)
class EvalItem:
    """One question: the sample every path answers, and the answer it is scored against."""

    sample: Sample
    answer: str
    source: str  # where it came from, for messages and the flips table: ``easy-vqa test #12``, ``qa.jsonl:3``

    @property
    def image_names(self) -> str:
        return "+".join(path.name for path in self.sample.images)


@dataclass(frozen=True)
class EvalSet:
    spec: str  # as given (``easy-vqa[:40]``, ``data/qa.jsonl``): the report's name for it
    items: tuple[EvalItem, ...]

    def __len__(self) -> int:
        return len(self.items)


def check_spec(spec: str) -> None:
    """The spec's syntax alone (no file opened, no data set imported): the pytest plugin checks it at start-up."""
    spec = spec.strip()
    if spec.startswith(EASY_VQA):
        parse_easy_vqa_slice(spec)
    elif Path(spec).suffix.lower() != ".jsonl":
        raise EvalSetError(
            f"--eval-set {spec}: not an eval set. Use easy-vqa, easy-vqa[:N], easy-vqa[A:B], or a .jsonl file of "
            '{"image": ..., "question": ..., "answer": ...} lines.'
        )


def load_eval_set(spec: str) -> EvalSet:
    """The eval set ``spec`` names (see the module docstring), every image checked to be readable."""
    spec = spec.strip()
    check_spec(spec)
    if spec.startswith(EASY_VQA):
        return EvalSet(spec, easy_vqa_items(spec))
    return EvalSet(spec, jsonl_items(Path(spec).expanduser()))


def parse_easy_vqa_slice(spec: str) -> slice:
    """``easy-vqa`` → the whole split; ``easy-vqa[A:B]`` → ``slice(A, B)`` (either bound may be left out)."""
    match = _EASY_VQA_SLICE.match(spec)
    if match is None:
        raise EvalSetError(
            f"--eval-set {spec}: not a slice of easy-vqa. Write easy-vqa, easy-vqa[:N] or easy-vqa[A:B] with "
            "non-negative integers, e.g. easy-vqa[:40]."
        )
    start, stop = (int(bound) if bound else None for bound in (match["start"], match["stop"]))
    return slice(start, stop)


def easy_vqa_items(spec: str) -> tuple[EvalItem, ...]:
    """The easy-VQA test split (or the slice ``spec`` names), in the package's file order."""
    selected = parse_easy_vqa_slice(spec)
    try:
        import easy_vqa
    except ImportError:
        raise UsageError(
            f"--eval-set {spec}: the easy-VQA data set is not installed. Install it with {EASY_VQA_INSTALL} "
            "(or pass your own .jsonl eval set)."
        ) from None
    questions, answers, image_ids = easy_vqa.get_test_questions()
    image_paths = easy_vqa.get_test_image_paths()
    indices = range(len(questions))[selected]
    if not indices:
        raise EvalSetError(
            f"--eval-set {spec}: selects no question (the test split has {len(questions)}); choose a slice inside "
            f"[0:{len(questions)}]."
        )
    items, checked = [], set()
    for index in indices:
        image = Path(image_paths[image_ids[index]])
        items.append(_item((image,), questions[index], answers[index], f"easy-vqa test #{index}", spec, checked))
    return tuple(items)


def jsonl_items(path: Path) -> tuple[EvalItem, ...]:
    """Every non-blank line of a JSONL eval set, images resolved against the file's folder."""
    if not path.is_file():
        raise EvalSetError(f"--eval-set {path}: no such file. Check the path, or use easy-vqa[:N].")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"--eval-set {path}: cannot be read as UTF-8 text ({exc}).") from exc
    items, checked = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(
                f"--eval-set {where}: not valid JSON ({exc.msg} at column {exc.colno}). Each line must be one object "
                '{"image": ..., "question": ..., "answer": ...}.'
            ) from None
        images, question, answer = _fields(record, where)
        resolved = tuple(image if image.is_absolute() else path.parent / image for image in images)
        items.append(_item(resolved, question, answer, f"{path.name}:{number}", where, checked))
    if not items:
        raise EvalSetError(
            f'--eval-set {path}: holds no question. Add one {{"image": ..., "question": ..., "answer": ...}} per line.'
        )
    return tuple(items)


def _fields(record: Any, where: str) -> tuple[tuple[Path, ...], str, str]:
    if not isinstance(record, dict):
        raise EvalSetError(f"--eval-set {where}: a JSON {type(record).__name__}, not an object with {JSONL_KEYS}.")
    missing = [key for key in JSONL_KEYS if key not in record]
    if missing:
        raise EvalSetError(
            f"--eval-set {where}: missing key(s) {', '.join(missing)}; every line needs "
            f"{', '.join(JSONL_KEYS)} (image: a path relative to the file's folder, or a list of them)."
        )
    image, question, answer = (record[key] for key in JSONL_KEYS)
    images = image if isinstance(image, list) else [image]
    if not images or not all(isinstance(item, str) and item.strip() for item in images):
        raise EvalSetError(f"--eval-set {where}: image must be a non-empty path string or a list of them.")
    for key, value in (("question", question), ("answer", answer)):
        if not isinstance(value, str) or not value.strip():
            raise EvalSetError(f"--eval-set {where}: {key} must be a non-empty string, not {value!r}.")
    return tuple(Path(item).expanduser() for item in images), question, answer


def _item(
    images: tuple[Path, ...], question: str, answer: str, source: str, where: str, checked: set[Path]
) -> EvalItem:
    """An item whose question and images are checked now (an unreadable image fails here, naming its line); images in
    ``checked`` were opened for an earlier item (easy-VQA asks ~10 questions per image)."""
    try:
        check_prompt(question)
    except UsageError as exc:
        raise EvalSetError(f"--eval-set {where}: the question {exc}".replace("--prompt ", "")) from None
    for image in images:
        if image in checked:
            continue
        if not image.is_file():
            raise EvalSetError(
                f"--eval-set {where}: image {image}: no such file. Image paths are relative to the eval set's folder "
                "(or absolute)."
            )
        try:
            load_image(image)
        except InputFileError as exc:
            raise EvalSetError(f"--eval-set {where}: image {str(exc).removeprefix('--image ')}") from None
        checked.add(image)
    return EvalItem(Sample(images, question), answer, source)
