"""The versioned tolerance file parses, covers every path, and rejects malformed profiles."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vlparity.errors import UsageError
from vlparity.parity.tolerances import TOLERANCES_FILE, load_tolerances, tolerance_for
from vlparity.paths import PATHS, REFERENCE_PATH


def test_every_candidate_path_has_a_profile() -> None:
    profiles = load_tolerances()
    assert set(PATHS) - {REFERENCE_PATH} <= set(profiles)


def test_every_number_has_a_comment_saying_where_it_came_from() -> None:
    lines = TOLERANCES_FILE.read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("version"):
            previous = lines[index - 1].lstrip() if index else ""
            assert "#" in line or previous.startswith("#"), f"uncommented tolerance: {line!r}"


def test_split_profile_demands_bit_exactness() -> None:
    split = tolerance_for("split")
    assert (split.vision_atol, split.vision_rtol, split.kl_max, split.tokens) == (0.0, 0.0, 0.0, "exact")


def test_malformed_profile_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "tolerances.toml"
    bad.write_text('version = 1\n[paths.split]\nvision_atol = 0.0\ntokens = "roughly"\n')
    with pytest.raises(UsageError, match=r"\[paths.split\] is invalid"):
        load_tolerances(bad)


def test_unknown_path_has_no_profile() -> None:
    with pytest.raises(UsageError, match="no tolerance profile"):
        tolerance_for("does-not-exist")


def test_a_family_override_applies_to_that_family_only() -> None:
    shared = tolerance_for("onnx-qdq")
    assert tolerance_for("onnx-qdq", "qwen2_5_vl").vision_min_cosine < shared.vision_min_cosine  # its own floor
    assert tolerance_for("onnx-qdq", "qwen2_5_vl").vision_max_rel_l2 > shared.vision_max_rel_l2
    assert tolerance_for("onnx-qdq", "qwen2_vl").vision_min_cosine > shared.vision_min_cosine
    assert tolerance_for("onnx-qdq", "qwen3_vl").vision_min_cosine > shared.vision_min_cosine
    assert tolerance_for("onnx-qdq", "qwen2_vl").vision_max_rel_l2 == shared.vision_max_rel_l2  # key not overridden
    assert tolerance_for("onnx-qdq", "llava") == tolerance_for("onnx-qdq")
    assert tolerance_for("awq", "qwen2_vl") == tolerance_for("awq")


def test_a_family_override_of_an_unknown_path_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "tolerances.toml"
    bad.write_text(TOLERANCES_FILE.read_text() + "\n[families.qwen2_vl.no-such-path]\nkl_max = 1.0  # typo\n")
    with pytest.raises(UsageError, match=r"\[families.qwen2_vl\] overrides unknown path"):
        load_tolerances(bad, "qwen2_vl")


def test_every_profile_carries_the_file_version() -> None:
    """``version`` is what a report records as the tolerance it was judged by (``tolerance_version``)."""
    version = tomllib.loads(TOLERANCES_FILE.read_text())["version"]
    assert {profile.version for profile in load_tolerances().values()} == {version}


def test_every_lossy_path_lets_a_hesitating_reference_go_ungated() -> None:
    """A path whose tokens may differ (``topk`` rule) can flip a near tie the reference itself hesitates on (issue #14:
    onnx-int8 failed same-top-1 0.875 at KL 2e-6): those steps are reported, not gated."""
    for family in (None, "qwen2_5_vl", "qwen2_vl", "qwen3_vl"):
        lossy = {name: t.settled_p for name, t in load_tolerances(model_type=family).items() if t.tokens == "topk"}
        assert {"onnx-fp16", "onnx-int8", "awq", "awq+onnx"} <= lossy.keys()
        assert [name for name, settled_p in lossy.items() if not settled_p > 0] == []
