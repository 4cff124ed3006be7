"""The pytest11 plugin: prefixed options, usage errors at start-up, fixtures and marker, lazy imports, the summary
table and the report file."""

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

UNRELATED_TEST = """
import sys

def test_unrelated():
    assert True

def test_the_plugin_imported_no_heavy_module():
    heavy = {"torch", "transformers", "onnxruntime", "numpy", "vlparity.session", "vlparity.paths"}
    assert not heavy & set(sys.modules)
"""


def test_help_shows_a_vlparity_option_group_with_prefixed_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["vlparity: vision-language model parity:", "*--vlparity-model=*"])
    result.stdout.fnmatch_lines(["*--vlparity-report=*"])
    result.stdout.no_fnmatch_line("  --model*")


def test_a_project_defining_its_own_model_option_still_starts(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "def pytest_addoption(parser):\n    parser.addoption('--model', default='mine')\n"
        "import pytest\n@pytest.fixture\ndef model(request):\n    return request.config.getoption('--model')\n"
    )
    pytester.makepyfile("def test_model(model):\n    assert model == 'theirs'\n")
    result = pytester.runpytest_subprocess("--model", "theirs")
    result.assert_outcomes(passed=1)


def test_an_unrelated_test_run_imports_no_heavy_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(UNRELATED_TEST)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_usage_error_not_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PARITY_TEST)
    result = pytester.runpytest_subprocess("--vlparity-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no CUDA device is available*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vlparity-report", "out/parity.pdf"], "*--vlparity-report out/parity.pdf: unknown suffix '.pdf'*"),
        (["--vlparity-dtype", "float8"], "*--vlparity-dtype: invalid choice: 'float8'*"),
        (["--vlparity-max-new-tokens", "0"], "*--vlparity-max-new-tokens 0: must be ≥ 1*"),
        (["--vlparity-max-new-tokens", "many"], "*--vlparity-max-new-tokens: invalid int value: 'many'*"),
        (["--vlparity-device", "tpu"], "*--vlparity-device 'tpu': not one of auto, cpu, cuda*"),
        (["--vlparity-ep-option", "novalue"], "*--ep-option 'novalue': expected KEY=VALUE*"),
        (
            ["--vlparity-ep", "vitisai", "--vlparity-ep-option", "cachedir=/tmp/vaip"],
            "*VitisAIExecutionProvider has no option 'cachedir'; did you mean 'cache_dir'?*",
        ),
        (["--vlparity-eval-set", "easy-vqa[5]"], "*--vlparity-eval-set easy-vqa?5?: not a slice of easy-vqa*"),
        (["--vlparity-static-shape", "448"], "*--vlparity-static-shape '448': expected WIDTHxHEIGHT in pixels*"),
        (["--vlparity-qdq-config", "int4"], "*--vlparity-qdq-config: invalid choice: 'int4'*"),
        (["--vlparity-qdq-exclude=@missing.txt"], "*--vlparity-qdq-exclude @missing.txt: no such file*"),
    ],
    ids=[
        "report suffix",
        "dtype",
        "zero tokens",
        "non-integer tokens",
        "device",
        "provider option",
        "vitisai option key",
        "eval set",
        "static shape",
        "qdq config",
        "qdq exclude file",
    ],
)
def test_a_bad_option_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(PARITY_TEST)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*test_split*")


def test_ini_options_are_typed_and_honoured(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvlparity_paths = original,unknown-path\n")
    pytester.makepyfile(PARITY_TEST)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown path(s) unknown-path*"])


def test_ini_values_arrive_as_int_and_bool(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvlparity_max_new_tokens = 3\nvlparity_trust_remote_code = true\n")
    pytester.makepyfile(
        "from vlparity.pytest_plugin import settings_from_config\n"
        "def test_settings(pytestconfig):\n"
        "    settings = settings_from_config(pytestconfig)\n"
        "    assert settings.max_new_tokens == 3 and settings.trust_remote_code is True\n"
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


NPU_SETTINGS_TEST = """
from vlparity.pytest_plugin import settings_from_config
from vlparity.static_shape import StaticShape

def test_settings(pytestconfig):
    settings = settings_from_config(pytestconfig)
    assert settings.static_shape == StaticShape(336, 224)
    assert settings.qdq_config == "xint8"
    assert settings.qdq_exclude == ("node_a", "node_b", "node_c")
"""


def test_the_npu_options_reach_the_run_settings(pytester: pytest.Pytester) -> None:
    """--vlparity-static-shape, --vlparity-qdq-config and --vlparity-qdq-exclude (a list, or @FILE) arrive in
    RunSettings as the CLI's --static-shape, --qdq-config and --qdq-exclude do; the ini keys too."""
    pytester.makepyfile(NPU_SETTINGS_TEST)
    pytester.path.joinpath("float-nodes.txt").write_text("node_c\nnode_a\n")
    flags = ["--vlparity-static-shape", "336x224", "--vlparity-qdq-config", "xint8"]
    pytester.runpytest_subprocess(*flags, "--vlparity-qdq-exclude", "node_b,node_a,node_c").assert_outcomes(passed=1)
    pytester.makeini(
        "[pytest]\nvlparity_static_shape = 336x224\nvlparity_qdq_config = xint8\n"
        "vlparity_qdq_exclude = @float-nodes.txt\n"
    )
    # pytest reads an argument that starts with @ as a file of arguments: an option's @FILE goes after "="
    pytester.runpytest_subprocess("--vlparity-qdq-exclude=@float-nodes.txt,node_b").assert_outcomes(passed=1)
    defaults = "from vlparity.pytest_plugin import settings_from_config\n\ndef test_defaults(pytestconfig):\n"
    defaults += "    s = settings_from_config(pytestconfig)\n"
    defaults += "    assert (s.static_shape, s.qdq_config, s.qdq_exclude) == (None, 'a8w8', ())\n"
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(defaults)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_candidate_path_is_a_listed_fixture_and_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PARITY_TEST)
    fixtures = pytester.runpytest_subprocess("--fixtures")
    fixtures.stdout.fnmatch_lines(["candidate_path*", "*Name of a path judged against*"])
    markers = pytester.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.vlparity*"])


def test_parity_tests_are_marked_and_deselectable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PARITY_TEST + "\n\ndef test_unrelated():\n    assert True\n")
    result = pytester.runpytest_subprocess("-m", "not vlparity", "--vlparity-paths", "original,split,onnx")
    result.assert_outcomes(passed=1, deselected=2)


def test_run_prints_the_summary_and_writes_the_report(pytester: pytest.Pytester, tmp_path_factory) -> None:
    pytester.makepyfile(PARITY_TEST)
    report = pytester.path / "parity.json"
    cache = tmp_path_factory.mktemp("cache")
    result = pytester.runpytest_subprocess(
        "--vlparity-device",
        "cpu",
        "--vlparity-paths",
        "original,split",
        "--vlparity-max-new-tokens",
        "4",
        f"--vlparity-cache-dir={cache}",
        f"--vlparity-report={report}",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*vlparity parity summary*", "split*vision*PASS *", "split*tokens*PASS *", "overall: PASS"]
    )
    data = json.loads(report.read_text())
    assert data["paths"]["split"]["passed"] is True


EVAL_SET_TEST = """
def test_accuracy(parity_session, candidate_path, eval_set):
    assert parity_session.check_accuracy(candidate_path, eval_set).passed
"""


def test_the_eval_set_fixture_loads_the_option_and_skips_without_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(EVAL_SET_TEST)
    skipped = pytester.runpytest_subprocess("--vlparity-paths", "original,split", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*no eval set: pass --vlparity-eval-set*"])
    missing = pytester.runpytest_subprocess("--vlparity-paths", "original,split", "--vlparity-eval-set", "no.jsonl")
    missing.assert_outcomes(errors=1)
    missing.stdout.fnmatch_lines(["*vlparity: --eval-set no.jsonl: no such file*"])
