"""Project-wide pytest set-up: hypothesis profiles, the benchmark suite's options and storage location.

The vlparity plugin itself loads through its pytest11 entry point.

--hypothesis-profile=ci       deterministic and bounded (default)
--hypothesis-profile=nightly  many more examples, random seeds
--perf-size=tiny|real         benchmark model size (tests/perf)
--perf-threads=N              torch and ONNX Runtime intra-op threads in tests/perf (0: their defaults, all cores)
--perf-family=F               the real profile's family: qwen2_5_vl (3B dims, default), qwen3_vl (2B), qwen3_vl_4b
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

PYTEST_BENCHMARK_DEFAULT_STORAGE = "file://./.benchmarks"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("vlparity perf").addoption(
        "--perf-size",
        choices=["tiny", "real"],
        default="tiny",
        help="tiny: the bundled fixtures (CI); real: Qwen2.5-VL-3B vision dims + LM slice, random weights (minutes)",
    )
    parser.getgroup("vlparity perf").addoption(
        "--perf-family",
        choices=["qwen2_5_vl", "qwen3_vl", "qwen3_vl_4b"],
        default="qwen2_5_vl",
        help="--perf-size real: Qwen2.5-VL-3B (default), Qwen3-VL-2B or -4B published dimensions, random weights",
    )
    parser.getgroup("vlparity perf").addoption(
        "--perf-threads",
        type=int,
        default=0,
        help="intra-op threads of torch and ONNX Runtime in the benchmarks (default 0: their defaults, all cores)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Keep benchmark baselines in <rootdir>/.benchmarks whatever the working directory (unless given explicitly)."""
    if config.getoption("benchmark_storage", None) == PYTEST_BENCHMARK_DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{config.rootpath / '.benchmarks'}"
