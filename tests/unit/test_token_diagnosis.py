"""A token failure names its real cause: the prompt, the EOS ids, the generation config or the decoder layer, checked
before the image embeddings are blamed. Each fault is planted in a copy of the genuine split (re-signed)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.parity.faults import SAMPLE, bench_settings, edit_json, resign
from vlparity.paths.split import SplitPath
from vlparity.report.model import CheckResult
from vlparity.session import ParitySession

ROOT = Path(__file__).resolve().parents[2]
BLAMES_THE_IMAGES = "comes from this path's image embeddings"


@pytest.fixture(scope="module")
def genuine() -> Iterator[ParitySession]:
    settings = dataclasses.replace(bench_settings(cache_dir=ROOT / ".vlparity-cache"), paths=("original", "split"))
    yield ParitySession(settings)


def judge(genuine: ParitySession, tmp_path: Path, plant: Callable[[Path], None]) -> tuple[CheckResult, ParitySession]:
    """The tokens check of a fresh session on a split copy with ``plant`` applied to its ``language/`` folder."""
    copy = tmp_path / "split"
    shutil.copytree(genuine.runner("split").artefact_dir, copy)
    plant(copy / "language")
    resign(copy)
    session = ParitySession(genuine.settings)
    session.use_runner(genuine.runner("original"))
    session.use_runner(SplitPath(session.context, artefact_dir=copy))
    return session.check_tokens("split", SAMPLE), session


def test_a_changed_chat_template_is_named_as_the_prompt(genuine: ParitySession, tmp_path: Path) -> None:
    def plant(language: Path) -> None:
        template = language / "chat_template.jinja"
        template.write_text("<|im_start|>system\nBe brief.<|im_end|>\n" + template.read_text())

    result, _ = judge(genuine, tmp_path, plant)
    assert not result.passed
    assert result.reasons[0].startswith("the prompt token ids differ at position ")
    assert "chat template or tokenizer differs" in result.reasons[0]
    assert not any(BLAMES_THE_IMAGES in reason for reason in result.reasons)


def test_a_changed_eos_id_is_named_and_where_each_side_stops(genuine: ParitySession, tmp_path: Path) -> None:
    second = int(genuine.generation("original", SAMPLE).tokens[1])  # the candidate now stops after two tokens
    result, _ = judge(genuine, tmp_path, lambda d: edit_json(d / "generation_config.json", _set(eos_token_id=[second])))
    assert not result.passed
    assert any(f"the end-of-sequence ids differ: reference 2, candidate {second}" in r for r in result.reasons)
    assert any("the candidate ends (end of sequence) after 2 token(s)" in r for r in result.reasons)
    assert not any("None" in reason or BLAMES_THE_IMAGES in reason for reason in result.reasons)


def test_a_repetition_penalty_fails_naming_the_field(genuine: ParitySession, tmp_path: Path) -> None:
    result, session = judge(
        genuine, tmp_path, lambda d: edit_json(d / "generation_config.json", _set(repetition_penalty=1.05))
    )
    assert not result.passed
    assert any("generation config: repetition_penalty 1.05, reference 1.0" in r for r in result.reasons)
    assert not any(BLAMES_THE_IMAGES in reason for reason in result.reasons)
    assert session.report().paths["split"].details["generation_config"]["fails"]


def test_a_config_that_samples_fails_though_the_greedy_tokens_match(genuine: ParitySession, tmp_path: Path) -> None:
    result, _ = judge(
        genuine, tmp_path, lambda d: edit_json(d / "generation_config.json", _set(do_sample=True, temperature=0.7))
    )
    assert result.metrics["exact"] and not result.passed
    assert [reason.split(",")[0] for reason in result.reasons] == [
        "generation config: do_sample True",
        "generation config: temperature 0.7",
    ]


def test_a_changed_pad_id_only_warns(genuine: ParitySession, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vlparity.session"):
        result, _ = judge(genuine, tmp_path, lambda d: edit_json(d / "generation_config.json", _set(pad_token_id=7)))
    assert result.passed
    assert "generation config: pad_token_id 7, reference 0" in caplog.text


def test_an_lm_weight_perturbed_under_1e_6_is_located(genuine: ParitySession, tmp_path: Path) -> None:
    """A fixed 1e-6 threshold cleared the LM and blamed the (identical) image embeddings."""

    def plant(language: Path) -> None:
        tensors = load_file(language / "model.safetensors")
        key = next(k for k in sorted(tensors) if "layers.1.mlp.down_proj" in k)
        tensors[key] *= 1 + 3e-7
        save_file(tensors, language / "model.safetensors", metadata={"format": "pt"})

    result, _ = judge(genuine, tmp_path, plant)
    assert not result.passed
    assert any(reason.startswith("first diverging decoder layer: 1 (rel L2") for reason in result.reasons), (
        result.reasons
    )


def _set(**values: object) -> Callable[[dict], None]:
    return lambda document: document.update(values)
