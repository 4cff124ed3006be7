"""The gate must fail when parity breaks: a split whose merger weight is off by 1e-3 fails the split checks."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.parity.samples import FIRST_PROMPT, IMAGES
from vlparity.hashing import tree_sha256
from vlparity.inputs import Sample
from vlparity.manifest import MANIFEST_NAME
from vlparity.paths.split import SplitPath, split_cache_dir
from vlparity.session import ParitySession


def perturb_merger_weight(split_dir: Path, delta: float) -> str:
    """Add ``delta`` to one merger weight of ``split_dir`` and re-sign the manifest (so only parity can notice)."""
    weights_path = split_dir / "vision" / "model.safetensors"
    tensors = load_file(weights_path)
    key = next(k for k in sorted(tensors) if "merger" in k and k.endswith("weight") and tensors[k].ndim == 2)
    tensors[key][0, 0] += delta
    save_file(tensors, weights_path, metadata={"format": "pt"})
    manifest = json.loads((split_dir / MANIFEST_NAME).read_text())
    manifest["files"] = {k: v for k, v in tree_sha256(split_dir).items() if k != MANIFEST_NAME}
    (split_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    return key


@pytest.fixture(scope="module")
def faulty_session(parity_session: ParitySession, tmp_path_factory: pytest.TempPathFactory) -> ParitySession:
    settings = dataclasses.replace(parity_session.settings, paths=("original", "split"))
    session = ParitySession(settings)
    session.runner("split")  # builds (or reuses) the genuine split artefact
    faulty_dir = tmp_path_factory.mktemp("faulty") / "split"
    shutil.copytree(split_cache_dir(session.context), faulty_dir)
    perturb_merger_weight(faulty_dir, 1e-3)
    session.use_runner(SplitPath(session.context, artefact_dir=faulty_dir))
    return session


SAMPLE = Sample((IMAGES[0],), FIRST_PROMPT)


def test_merger_weight_off_by_1e_3_fails_vision_parity(faulty_session: ParitySession) -> None:
    (result,) = faulty_session.check_vision("split", SAMPLE)
    assert not result.passed
    assert 0 < result.metrics["max_abs_err"] < 1.0
    assert any("max |Δ|" in reason for reason in result.reasons)


def test_merger_weight_off_by_1e_3_fails_token_parity(faulty_session: ParitySession) -> None:
    result = faulty_session.check_tokens("split", SAMPLE)
    assert not result.passed
    assert result.metrics["kl_max"] > 0


def test_the_genuine_split_passes_the_same_checks(parity_session: ParitySession) -> None:
    session = ParitySession(dataclasses.replace(parity_session.settings, paths=("original", "split")))
    assert all(r.passed for r in session.check_vision("split", SAMPLE))
    assert session.check_tokens("split", SAMPLE).passed
