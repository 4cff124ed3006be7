"""pytest plugin (registered as ``pytest11: vlparity``): options, a session-scoped ``parity_session`` fixture,
``candidate_path`` parametrization, and the parity table / JSON report at the end of the run.

Thin on purpose: all running and judging happens in ``vlparity.session``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vlparity.devices import DEVICE_MAP_CHOICES, DTYPE_CHOICES, check_device_map, resolve_device
from vlparity.errors import VlparityError
from vlparity.paths import REFERENCE_PATH, parse_path_names
from vlparity.report.json_report import report_from_dict, report_to_dict
from vlparity.report.merge import ReportShare, merge_reports
from vlparity.report.model import ParityReport
from vlparity.runtime.ort import OrtOptions, parse_provider_options, requested_provider
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession, RunSettings

SESSION_KEY = pytest.StashKey[ParitySession]()
OPTIONS = {
    # option: (ini name, default, help)
    "model": ("vlparity_model", None, "checkpoint dir or hub id (default: bundled Qwen2.5-VL fixture)"),
    "device": ("vlparity_device", "auto", "auto, cpu, cuda or cuda:N; cuda without a GPU is a usage error"),
    "dtype": ("vlparity_dtype", "auto", f"one of {', '.join(DTYPE_CHOICES)} (auto: float32, the reference)"),
    "paths": ("vlparity_paths", "all", "comma-separated paths to compare against original, or all"),
    "parity-report": ("vlparity_report", None, "write the parity report here: .json, .md or .html (by suffix)"),
    "max-new-tokens": ("vlparity_max_new_tokens", "16", "greedy tokens generated per sample"),
    "vlparity-cache-dir": ("vlparity_cache_dir", str(DEFAULT_CACHE_DIR), "artefact cache (relative to rootdir)"),
    "ep": ("vlparity_ep", "cpu", "ONNX Runtime execution provider: cpu, cuda, vitisai or auto"),
    "ep-option": ("vlparity_ep_options", "", "comma-separated KEY=VALUE provider options"),
    "allow-ep-fallback": ("vlparity_allow_ep_fallback", "false", "true: accept an EP that executed no node"),
    "device-map": ("vlparity_device_map", "none", f"none or {', '.join(DEVICE_MAP_CHOICES)}: accelerate places the LM"),
    "trust-remote-code": ("vlparity_trust_remote_code", "false", "true: let transformers run a checkpoint's own code"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlparity", "vlparity: vision-language model parity")
    for option, (ini, default, help_text) in OPTIONS.items():
        flag = {"action": "store_const", "const": "true"} if default == "false" else {}
        group.addoption(f"--{option}", dest=ini, default=None, help=f"{help_text} [ini: {ini}]", **flag)
        parser.addini(ini, help=help_text, default=default)


def _option(config: pytest.Config, option: str) -> str | None:
    ini = OPTIONS[option][0]
    value = config.getoption(ini)
    return value if value is not None else config.getini(ini)


def _flag(config: pytest.Config, option: str) -> bool:
    return str(_option(config, option)).lower() in ("1", "true", "yes")


def settings_from_config(config: pytest.Config) -> RunSettings:
    cache_dir = Path(str(_option(config, "vlparity-cache-dir")))
    try:
        max_new_tokens = int(str(_option(config, "max-new-tokens")))
    except ValueError:
        raise pytest.UsageError(f"--max-new-tokens {_option(config, 'max-new-tokens')!r}: not an integer") from None
    return RunSettings(
        model=_option(config, "model"),
        device=str(_option(config, "device")),
        dtype=str(_option(config, "dtype")),
        paths=tuple(str(_option(config, "paths")).split(",")),
        max_new_tokens=max_new_tokens,
        cache_dir=cache_dir if cache_dir.is_absolute() else config.rootpath / cache_dir,
        ort=OrtOptions(
            ep=str(_option(config, "ep")),
            provider_options=parse_provider_options([i for i in str(_option(config, "ep-option")).split(",") if i]),
            allow_fallback=_flag(config, "allow-ep-fallback"),
        ),
        device_map=check_device_map(str(_option(config, "device-map"))),
        trust_remote_code=_flag(config, "trust-remote-code"),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Reject impossible options before collection: asking for CUDA without one is an error, not a skip."""
    try:
        settings = settings_from_config(config)
        resolve_device(settings.device)
        parse_path_names(settings.paths)
        requested_provider(settings.ort)
    except VlparityError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "candidate_path" in metafunc.fixturenames:
        names = [n for n in parse_path_names(settings_from_config(metafunc.config).paths) if n != REFERENCE_PATH]
        metafunc.parametrize("candidate_path", names, ids=names, scope="session")


@pytest.fixture(scope="session")
def parity_session(request: pytest.FixtureRequest) -> ParitySession:
    """The run's one ``ParitySession``: paths are built once and every parity test records into it."""
    config = request.config
    if SESSION_KEY not in config.stash:
        try:
            config.stash[SESSION_KEY] = ParitySession(settings_from_config(config))
        except VlparityError as exc:
            pytest.fail(f"vlparity: {exc}", pytrace=False)
    return config.stash[SESSION_KEY]


WORKER_SHARES_KEY = pytest.StashKey[list]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand this worker's share of the report to the controller."""
    config = session.config
    parity = config.stash.get(SESSION_KEY, None)
    if hasattr(config, "workeroutput") and parity is not None:
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
    report_path = _option(config, "parity-report")
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
