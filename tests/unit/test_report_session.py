"""A real session on the fixture fills the report's plot series consistently with its metrics (slow: builds split)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlparity.inputs import Sample, fixture_images
from vlparity.report.model import CheckResult, ParityReport
from vlparity.session import ParitySession, RunSettings

pytestmark = pytest.mark.slow
IMAGES = fixture_images()
TWO_IMAGES = Sample((IMAGES[0], IMAGES[-1]), "What is in the image?")  # different grids: 9×11 and 4×32


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ParityReport:
    cache = tmp_path_factory.mktemp("cache")
    settings = RunSettings(device="cpu", paths=("original", "split"), max_new_tokens=4, cache_dir=Path(cache))
    return ParitySession(settings).run([TWO_IMAGES])


def _checks(report: ParityReport, kind: str) -> list[CheckResult]:
    return [check for check in report.paths["split"].checks if check.check == kind]


def test_each_image_gets_its_own_grid_image_and_one_cosine_per_token(report: ParityReport) -> None:
    vision = _checks(report, "vision")
    assert [check.series["image"] for check in vision] == [str(path) for path in TWO_IMAGES.images]
    for check in vision:
        rows, cols = check.series["grid"]
        assert rows * cols == len(check.series["token_cosine"]) == check.metrics["shape_reference"][0]
    assert vision[0].series["grid"] != vision[1].series["grid"]


def test_the_histogram_counts_every_embedding_element(report: ParityReport) -> None:
    for check in _checks(report, "vision"):
        histogram = check.series["abs_err_histogram"]
        counted = sum(histogram["counts"]) + sum(histogram[k] for k in ("zero", "below", "above", "nonfinite"))
        rows, hidden = check.metrics["shape_reference"]
        assert counted == rows * hidden and histogram["zero"] == counted  # split is bit-exact


def test_vectors_live_in_series_not_in_metrics(report: ParityReport) -> None:
    vision, tokens = _checks(report, "vision")[0], _checks(report, "tokens")[0]
    assert "token_cosines" not in vision.metrics and "kl_per_step" not in tokens.metrics


def test_token_series_align_with_the_generated_tokens(report: ParityReport) -> None:
    tokens = _checks(report, "tokens")[0]
    assert len(tokens.series["kl_per_step"]) == tokens.metrics["steps"]
    assert len(tokens.series["reference_pieces"]) == len(tokens.metrics["reference_tokens"])
    assert "".join(tokens.series["reference_pieces"]).startswith(tokens.metrics["reference_text"])


def test_memory_is_reported_for_every_timed_stage(report: ParityReport) -> None:
    split = report.paths["split"]
    assert set(split.memory) == set(split.timings)
    assert all(memory["peak_rss_bytes"] > 0 for memory in split.memory.values())
