"""pytest plugin (registered as ``pytest11: vlparity``): options, a session-scoped ``parity_session`` fixture,
``candidate_path`` parametrization, and the parity table / JSON report at the end of the run.

Thin on purpose: all running and judging happens in ``vlparity.session``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Light imports only: pytest loads this plugin in every run of every project where vlparity is installed, so torch,
# transformers and the runners are imported when a vlparity fixture is first used, never at start-up.
from vlparity.devices import DEVICE_CHOICES, DEVICE_MAP_CHOICES, DTYPE_CHOICES, check_device_map
from vlparity.errors import VlparityError
from vlparity.export.qdq import DEFAULT_QDQ_CONFIG, QDQ_CONFIGS, parse_qdq_exclude  # no numpy at import
from vlparity.path_names import REFERENCE_PATH, parse_path_names
from vlparity.report import REPORT_SUFFIXES
from vlparity.runtime.ort import EP_CHOICES, OrtOptions, parse_provider_options

if TYPE_CHECKING:
    from vlparity.eval_sets import EvalSet
    from vlparity.report.model import ParityReport
    from vlparity.session import ParitySession, RunSettings
    from vlparity.static_shape import StaticShape

SESSION_KEY = pytest.StashKey["ParitySession"]()
DEFAULT_CACHE_DIR = ".vlparity-cache"  # as vlparity.session's, which this module must not import at start-up


@dataclass(frozen=True)
class PluginOption:
    """One ``--vlparity-*`` command-line option and its ``vlparity_*`` ini key (a flag given wins over the ini)."""

    name: str  # the part after ``--vlparity-``; the ini key is ``vlparity_`` + name with ``_`` for ``-``
    type: str  # pytest ini type: string, int or bool (a bool option is a flag on the command line)
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return f"--vlparity-{self.name}"

    @property
    def ini(self) -> str:
        return "vlparity_" + self.name.replace("-", "_")


OPTIONS: dict[str, PluginOption] = {
    option.name: option
    for option in (
        PluginOption("model", "string", "", "checkpoint dir or hub id (default: bundled Qwen2.5-VL fixture)"),
        PluginOption("device", "string", "auto", "auto, cpu, cuda or cuda:N; cuda without a GPU is a usage error"),
        PluginOption("dtype", "string", "auto", "auto is float32, the reference's dtype", DTYPE_CHOICES),
        PluginOption("paths", "string", "all", "comma-separated paths to compare against original, or all"),
        PluginOption("report", "string", "", f"write the parity report here, by suffix: {', '.join(REPORT_SUFFIXES)}"),
        PluginOption("max-new-tokens", "int", 16, "greedy tokens generated per sample"),
        PluginOption("cache-dir", "string", DEFAULT_CACHE_DIR, "artefact cache (relative to rootdir)"),
        PluginOption("ep", "string", "cpu", "ONNX Runtime execution provider", EP_CHOICES),
        PluginOption("ep-option", "string", "", "comma-separated KEY=VALUE provider options"),
        PluginOption("allow-ep-fallback", "bool", False, "accept an execution provider that executed no node"),
        PluginOption("device-map", "string", "none", "accelerate places the LM", ("none", *DEVICE_MAP_CHOICES)),
        PluginOption("trust-remote-code", "bool", False, "let transformers run a checkpoint's own code"),
        PluginOption("eval-set", "string", "", "eval set of the eval_set fixture: easy-vqa[A:B] or FILE.jsonl"),
        PluginOption(
            "static-shape", "string", "", "WxH: every image resized to it, onnx* exported for it only (fixed shape)"
        ),
        PluginOption("qdq-config", "string", DEFAULT_QDQ_CONFIG, "onnx-qdq's static int8 scheme", QDQ_CONFIGS),
        PluginOption("qdq-exclude", "string", "", "onnx-qdq: comma-separated nodes kept in float, or =@FILE"),
    )
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlparity", "vlparity: vision-language model parity")
    for option in OPTIONS.values():
        kwargs: dict[str, Any] = {"action": "store_true"} if option.type == "bool" else {"choices": option.choices}
        if option.type == "int":
            kwargs["type"] = int
        group.addoption(option.flag, dest=option.ini, default=None, help=f"{option.help} [ini: {option.ini}]", **kwargs)
        parser.addini(option.ini, help=option.help, type=option.type, default=option.default)


def _option(config: pytest.Config, name: str) -> Any:
    """The command-line value of ``--vlparity-<name>`` if given, else its ini value (typed by pytest)."""
    option = OPTIONS[name]
    value = config.getoption(option.ini)
    given = value is not None and value is not False  # a flag not given reads False; 0 is a given value
    return value if given else config.getini(option.ini)


def _check_options(config: pytest.Config) -> None:
    """Every check that needs no torch, onnxruntime or model: a typo is a usage error before collection."""
    for option in OPTIONS.values():
        value = _option(config, option.name)
        if option.choices and value not in option.choices:
            raise pytest.UsageError(f"{option.ini} = {value!r}: not one of {', '.join(option.choices)}")
    if _option(config, "max-new-tokens") < 1:
        raise pytest.UsageError(f"--vlparity-max-new-tokens {_option(config, 'max-new-tokens')}: must be ≥ 1")
    report = _option(config, "report")
    if report and Path(report).suffix.lower() not in REPORT_SUFFIXES:
        raise pytest.UsageError(
            f"--vlparity-report {report}: unknown suffix {Path(report).suffix or '(none)'!r}; "
            f"use one of {', '.join(REPORT_SUFFIXES)}"
        )
    eval_set = eval_set_spec(config)
    if eval_set:
        from vlparity.eval_sets import check_spec

        try:
            check_spec(eval_set)
        except VlparityError as exc:
            raise pytest.UsageError(str(exc).replace("--eval-set", "--vlparity-eval-set", 1)) from None
    _static_shape(config)
    device = str(_option(config, "device"))
    if device not in DEVICE_CHOICES and not device.startswith("cuda:"):
        raise pytest.UsageError(f"--vlparity-device {device!r}: not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    try:
        parse_path_names(str(_option(config, "paths")))
        OrtOptions(
            ep=str(_option(config, "ep")), provider_options=parse_provider_options(_provider_option_items(config))
        )
        check_device_map(str(_option(config, "device-map")))
        _qdq_exclude(config)
    except VlparityError as exc:
        raise pytest.UsageError(str(exc)) from None


def _provider_option_items(config: pytest.Config) -> list[str]:
    return [item for item in str(_option(config, "ep-option")).split(",") if item]


def _static_shape(config: pytest.Config) -> StaticShape | None:
    """``--vlparity-static-shape WxH`` parsed (its syntax: whether the processor keeps the size is checked when the
    session starts, as for the CLI); None when not given. A malformed value is a usage error."""
    value = str(_option(config, "static-shape")).strip()
    if not value:
        return None
    import argparse

    from vlparity.static_shape import parse_static_shape  # imports PIL: only when the option is given

    try:
        return parse_static_shape(value)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"--vlparity-static-shape {exc}") from None


def _qdq_exclude(config: pytest.Config) -> tuple[str, ...]:
    """``--vlparity-qdq-exclude``: node names, sorted and unique (``@FILE`` read relative to the current directory)."""
    return parse_qdq_exclude([str(_option(config, "qdq-exclude"))], "--vlparity-qdq-exclude")


def settings_from_config(config: pytest.Config) -> RunSettings:
    """The run's settings from the options (imports the session module: call it where a parity test needs it)."""
    from vlparity.session import RunSettings

    cache_dir = Path(str(_option(config, "cache-dir")))
    return RunSettings(
        model=_option(config, "model") or None,
        device=str(_option(config, "device")),
        dtype=str(_option(config, "dtype")),
        paths=tuple(str(_option(config, "paths")).split(",")),
        max_new_tokens=int(_option(config, "max-new-tokens")),
        cache_dir=cache_dir if cache_dir.is_absolute() else config.rootpath / cache_dir,
        ort=OrtOptions(
            ep=str(_option(config, "ep")),
            provider_options=parse_provider_options(_provider_option_items(config)),
            allow_fallback=bool(_option(config, "allow-ep-fallback")),
        ),
        device_map=check_device_map(str(_option(config, "device-map"))),
        trust_remote_code=bool(_option(config, "trust-remote-code")),
        static_shape=_static_shape(config),
        qdq_config=str(_option(config, "qdq-config")),
        qdq_exclude=_qdq_exclude(config),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and reject impossible options before collection. Checks that need torch or onnxruntime
    (CUDA present, the execution provider in this build) run only when such a device or provider is asked for:
    asking for CUDA without one is an error, not a skip."""
    config.addinivalue_line(
        "markers", "vlparity: a test that uses the shared parity session (added automatically; select with -m vlparity)"
    )
    _check_options(config)
    try:
        if str(_option(config, "device")).startswith("cuda"):
            from vlparity.devices import resolve_device

            resolve_device(str(_option(config, "device")))
        if _option(config, "ep") != "cpu":
            from vlparity.runtime.ort import requested_provider

            requested_provider(OrtOptions(ep=str(_option(config, "ep"))))
    except VlparityError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "candidate_path" in metafunc.fixturenames:
        names = [n for n in parse_path_names(str(_option(metafunc.config, "paths"))) if n != REFERENCE_PATH]
        metafunc.parametrize("candidate_path", names, ids=names, scope="session", indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a vlparity fixture, so ``-m vlparity`` / ``-m "not vlparity"`` select them."""
    for item in items:
        if {"parity_session", "candidate_path"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("vlparity")


@pytest.fixture(scope="session")
def candidate_path(request: pytest.FixtureRequest) -> str:
    """Name of a path judged against ``original`` (``split``, ``onnx``, …): a test using it runs once per enabled
    path (``--vlparity-paths``)."""
    return request.param


@pytest.fixture(scope="session")
def parity_session(request: pytest.FixtureRequest) -> ParitySession:
    """The run's one ``ParitySession``: paths are built once and every parity test records into it."""
    config = request.config
    if SESSION_KEY not in config.stash:
        from vlparity.session import ParitySession

        try:
            config.stash[SESSION_KEY] = ParitySession(settings_from_config(config))
        except VlparityError as exc:
            pytest.fail(f"vlparity: {exc}", pytrace=False)
    return config.stash[SESSION_KEY]


def eval_set_spec(config: pytest.Config) -> str:
    """``--vlparity-eval-set`` (or ``vlparity_eval_set``), "" when not given."""
    return str(_option(config, "eval-set"))


def load_eval_set_or_fail(spec: str) -> EvalSet:
    """The eval set ``spec`` names, or the test fails with the loader's message (file, line, remedy)."""
    from vlparity.eval_sets import load_eval_set

    try:
        return load_eval_set(spec)
    except VlparityError as exc:
        pytest.fail(f"vlparity: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def eval_set(request: pytest.FixtureRequest) -> EvalSet:
    """The questions of ``--vlparity-eval-set`` (loaded once; every image opened), for
    ``parity_session.check_accuracy(candidate_path, eval_set)``. A test using it is skipped when no eval set is
    given."""
    spec = eval_set_spec(request.config)
    if not spec:
        pytest.skip("no eval set: pass --vlparity-eval-set easy-vqa[:N] or FILE.jsonl (ini vlparity_eval_set)")
    return load_eval_set_or_fail(spec)


WORKER_SHARES_KEY = pytest.StashKey[list]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand this worker's share of the report to the controller."""
    config = session.config
    parity = config.stash.get(SESSION_KEY, None)
    if hasattr(config, "workeroutput") and parity is not None:
        from vlparity.report.json_report import report_to_dict

        share = {"report": report_to_dict(parity.report()), "durations": parity.stage_durations()}
        config.workeroutput["vlparity"] = json.dumps(share)  # NaN/Inf survive Python's own JSON round trip


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """In the pytest-xdist controller: collect each worker's share."""
    share = getattr(node, "workeroutput", {}).get("vlparity")
    if share:
        node.config.stash.setdefault(WORKER_SHARES_KEY, []).append(json.loads(share))


def _run_report(config: pytest.Config) -> ParityReport | None:
    """This process's report, or under pytest-xdist the workers' shares merged into one."""
    parity = config.stash.get(SESSION_KEY, None)
    if parity is not None:
        return parity.report()
    shares = config.stash.get(WORKER_SHARES_KEY, [])
    if not shares:
        return None
    from vlparity.report.json_report import report_from_dict
    from vlparity.report.merge import ReportShare, merge_reports

    return merge_reports([ReportShare(report_from_dict(s["report"]), s["durations"]) for s in shares])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports the merged shares
        return
    report = _run_report(config)
    if report is None:
        return
    from vlparity.report.table import render_table

    terminalreporter.section("vlparity parity summary")
    if any(path.checks for path in report.candidates):
        terminalreporter.write_line(render_table(report))
    else:
        terminalreporter.write_line("no parity check ran through the shared parity_session in this run")
    report_path = _option(config, "report")
    if report_path:
        from vlparity.report import write_report

        try:
            written = write_report(report, Path(report_path))
            terminalreporter.write_line(f"parity report written to {written}")
        except VlparityError as exc:  # e.g. an unknown suffix: the run's results stand, say why the file is missing
            terminalreporter.write_line(f"vlparity: no parity report written: {exc}", red=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # GitHub Actions shows this file on the run's page
        from vlparity.report.markdown import render_markdown

        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown(report) + "\n")
        except OSError as exc:
            terminalreporter.write_line(f"vlparity: GITHUB_STEP_SUMMARY {summary}: {exc}", red=True)
