"""The pytest11 plugin: option group, usage errors, parametrization, summary table and JSON report."""

from __future__ import annotations

import json

import pytest
import torch

pytest_plugins = ["pytester"]

PARITY_TEST = """
from vlparity.inputs import Sample, fixture_images

def test_split(parity_session, candidate_path):
    sample = Sample((fixture_images()[0],), "What is in the image?")
    assert all(r.passed for r in parity_session.check_vision(candidate_path, sample))
    assert parity_session.check_tokens(candidate_path, sample).passed
"""


def test_help_shows_a_vlparity_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["vlparity: vision-language model parity:", "*--model=*", "*--parity-report=*"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_usage_error_not_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PARITY_TEST)
    result = pytester.runpytest_subprocess("--device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no CUDA device is available*"])


def test_run_prints_the_summary_and_writes_the_report(pytester: pytest.Pytester, tmp_path_factory) -> None:
    pytester.makepyfile(PARITY_TEST)
    report = pytester.path / "parity.json"
    cache = tmp_path_factory.mktemp("cache")
    result = pytester.runpytest_subprocess(
        "--device",
        "cpu",
        "--paths",
        "original,split",
        "--max-new-tokens",
        "4",
        f"--vlparity-cache-dir={cache}",
        f"--parity-report={report}",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*vlparity parity summary*", "split*vision*PASS", "split*tokens*PASS", "overall: PASS"]
    )
    data = json.loads(report.read_text())
    assert data["paths"]["split"]["passed"] is True


def test_ini_options_are_honoured(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvlparity_paths = original,unknown-path\n")
    pytester.makepyfile(PARITY_TEST)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown path(s) unknown-path*"])
