"""VitisAI without the EP: provider-option keys checked before a session exists, and the compiler's placement report
(recorded files in tests/data/vitisai) parsed and judged by the same code AuditedSession runs behind a fake provider
list."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.report_samples import build_report
from vlparity.cli import EXIT_USAGE, main
from vlparity.errors import ArtefactError, UsageError
from vlparity.report.views import report_warnings
from vlparity.runtime.ort import AuditedSession, OrtOptions, ProviderFallbackError
from vlparity.runtime.vitisai import (
    PROVIDER_OPTION_KEYS,
    VITISAI,
    NpuFallbackError,
    Placement,
    PlacementReportError,
    ProviderOptionError,
    check_provider_options,
    fallback_fraction,
    judge_placement,
    parse_placement_report,
    read_placement,
    report_directory,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "vitisai"
ERF_REPORT = DATA / "erf_fallback" / "vitisai_ep_report.json"
VAIML_SUMMARY = DATA / "vaiml" / "final-vaiml-pass-summary.txt"
KNOWN = sorted(PROVIDER_OPTION_KEYS[VITISAI])


# --- provider-option keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("cachedir", "cache_dir"), ("CacheKey", "cache_key"), ("targt", "target"), ("config", "config_file")],
)
def test_an_unknown_vitisai_key_is_refused_with_the_closest_known_key(key: str, suggestion: str) -> None:
    with pytest.raises(ProviderOptionError, match=rf"no option '{key}'; did you mean '{suggestion}'\?"):
        check_provider_options(VITISAI, {key: "x"})


def test_a_key_like_no_known_one_is_refused_with_the_list() -> None:
    with pytest.raises(ProviderOptionError, match=r"no option 'device_id'\. Known keys: .*cache_dir"):
        check_provider_options(VITISAI, {"device_id": "0"})


def test_every_documented_key_and_the_legacy_spelling_pass() -> None:
    check_provider_options(VITISAI, dict.fromkeys(KNOWN, "x"))
    OrtOptions(ep="vitisai", provider_options={"cacheDir": "c", "cacheKey": "k", "config_file": "vaip_config.json"})


def test_the_options_are_checked_when_read_not_when_a_session_is_built() -> None:
    """OrtOptions is built at start-up by the CLI and the pytest plugin, before any model is loaded."""
    with pytest.raises(UsageError, match="did you mean 'cache_dir'"):
        OrtOptions(ep="vitisai", provider_options={"cachedir": "/tmp/vaip"})
    OrtOptions(ep="cuda", provider_options={"device_id": "0"})  # ORT validates CUDA's own options
    with pytest.raises(UsageError, match=r"--max-npu-fallback 1\.5: must be a fraction in \[0, 1\]"):
        OrtOptions(max_npu_fallback=1.5)


def test_cli_wrong_case_option_key_is_a_usage_error_at_start_up(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run-onnx", "--ep", "vitisai", "--ep-option", "cachedir=/tmp/vaip", "--output-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "--ep-option cachedir=…: VitisAIExecutionProvider has no option 'cachedir'" in captured.err
    assert "did you mean 'cache_dir'?" in captured.err and "Traceback" not in captured.err


@given(st.sampled_from(KNOWN), st.data())
def test_any_case_variant_of_a_known_key_passes_or_names_a_known_key(key: str, data: st.DataObject) -> None:
    variant = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in key)
    try:
        check_provider_options(VITISAI, {variant: "x"})
    except ProviderOptionError as exc:
        suggested = str(exc).split("did you mean '")[1].split("'")[0]
        assert suggested in PROVIDER_OPTION_KEYS[VITISAI]


# --- the recorded placement reports -----------------------------------------------------------------------------------


def test_recorded_report_gives_operators_per_device_and_the_op_types_on_the_cpu() -> None:
    placement = parse_placement_report(ERF_REPORT)
    assert placement.ops == {"all": 261, "CPU": 30, "NPU": 231}
    assert placement.cpu_op_types["Erf"] == 4 and placement.cpu_op_types["Div"] == 4
    assert "MatMul" not in placement.cpu_op_types
    assert fallback_fraction(placement) == pytest.approx(30 / 261)
    assert fallback_fraction(placement, "gops") is None  # vitisai_ep_report.json has no GOPs


def test_recorded_vaiml_summary_gives_operators_and_gops() -> None:
    placement = parse_placement_report(VAIML_SUMMARY)
    assert placement.ops == {"all": 1210, "NPU": 1158}
    assert placement.gops == {"all": 57.3212, "NPU": 57.309}
    assert fallback_fraction(placement) == pytest.approx(52 / 1210)
    assert fallback_fraction(placement, "gops") == pytest.approx((57.3212 - 57.309) / 57.3212)


def test_both_reports_in_one_cache_directory_are_merged(tmp_path: Path) -> None:
    shutil.copy(ERF_REPORT, tmp_path)
    shutil.copy(VAIML_SUMMARY, tmp_path)
    placement = read_placement(tmp_path)
    assert placement is not None and len(placement.sources) == 2
    assert placement.ops["CPU"] == 30 and placement.gops["all"] == 57.3212 and "Erf" in placement.cpu_op_types
    assert read_placement(tmp_path / "absent") is None


def test_fallback_above_the_threshold_fails_naming_the_op_types() -> None:
    with pytest.raises(NpuFallbackError, match=r"11\.5% of the operators off the NPU") as caught:
        judge_placement(parse_placement_report(ERF_REPORT), 0.05)
    assert "on the CPU: Mul ×8, DequantizeLinear ×5, QuantizeLinear ×5, Add ×4, Div ×4, Erf ×4" in str(caught.value)
    assert str(ERF_REPORT) in str(caught.value) and "--max-npu-fallback" in str(caught.value)


def test_fallback_within_the_threshold_passes() -> None:
    judge_placement(parse_placement_report(VAIML_SUMMARY), 0.05)  # 4.3 % of the ops, 0.02 % of the GOPs
    judge_placement(parse_placement_report(ERF_REPORT), 0.2)


def test_gops_off_the_npu_fail_on_their_own() -> None:
    placement = Placement(sources=("s",), ops={"all": 100, "NPU": 99}, gops={"all": 10.0, "NPU": 8.0})
    with pytest.raises(NpuFallbackError, match=r"1\.0% of the operators, 20\.0% of the GOPs"):
        judge_placement(placement, 0.05)


def test_a_report_without_an_npu_entry_placed_everything_on_the_cpu(tmp_path: Path) -> None:
    report = tmp_path / "vitisai_ep_report.json"
    report.write_text(json.dumps({"deviceStat": [{"name": "all", "nodeNum": 965}, {"name": "CPU", "nodeNum": 965}]}))
    placement = parse_placement_report(report)
    assert fallback_fraction(placement) == 1.0
    assert placement.cpu_op_types == {}  # neither supportedOpType nor nodeStat: "op types not reported"
    with pytest.raises(NpuFallbackError, match="op types not reported"):
        judge_placement(placement, 0.05)


def test_older_reports_name_the_npu_dpu(tmp_path: Path) -> None:
    report = tmp_path / "vitisai_ep_report.json"
    devices = [{"name": "all", "nodeNum": 402}, {"name": "CPU", "nodeNum": 2}, {"name": "DPU", "nodeNum": 400}]
    cpu_types = ["::DequantizeLinear", "com.microsoft::QuickGelu"]
    devices[1]["supportedOpType"] = cpu_types
    report.write_text(json.dumps({"deviceStat": devices}))
    placement = parse_placement_report(report)
    assert fallback_fraction(placement) == pytest.approx(2 / 402)
    assert placement.cpu_op_types == {"DequantizeLinear": 0, "com.microsoft::QuickGelu": 0}


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("vitisai_ep_report.json", b'{"deviceStat": [', "is not valid JSON"),
        ("vitisai_ep_report.json", b"[]", 'has no "deviceStat" list'),
        ("vitisai_ep_report.json", b'{"deviceStat": []}', 'has no "deviceStat" list'),
        ("vitisai_ep_report.json", b'{"deviceStat": [{"name": "CPU", "nodeNum": -1}]}', r"deviceStat\[0\] without"),
        ("vitisai_ep_report.json", b'{"deviceStat": [{"name": "CPU", "nodeNum": "2"}]}', r"deviceStat\[0\] without"),
        ("vitisai_ep_report.json", b"\xff\xfe\x00", "cannot be read"),
        ("final-vaiml-pass-summary.txt", b"GOPs of the model: 3.6\n", "Number of operators in the model"),
        ("report.csv", b"a,b", "is neither"),
    ],
)
def test_a_malformed_report_is_a_typed_error_naming_the_file_and_the_remedy(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PlacementReportError, match=problem) as caught:
        parse_placement_report(path)
    assert isinstance(caught.value, ArtefactError)  # a VlparityError: exit 2, one line
    assert str(path) in str(caught.value) and "Delete that cache directory" in str(caught.value)


def test_an_unreadable_report_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "vitisai_ep_report.json").mkdir()
    with pytest.raises(PlacementReportError, match="cannot be read"):
        read_placement(tmp_path)


counts = st.integers(0, 10_000)
devices = st.dictionaries(st.sampled_from(["all", "CPU", "NPU", "DPU", "VAIML", "GPU"]), counts, max_size=6)
gops = st.dictionaries(st.sampled_from(["all", "NPU"]), st.floats(0, 1e4, allow_nan=False), max_size=2)


@given(devices, gops, st.floats(0, 1))
def test_the_fallback_fraction_is_always_in_0_1_and_judged_consistently(
    ops: dict[str, int], gops: dict[str, float], limit: float
) -> None:
    placement = Placement(sources=("r",), ops=ops, gops=gops)
    fractions = [
        f for f in (fallback_fraction(placement, "ops"), fallback_fraction(placement, "gops")) if f is not None
    ]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    if any(f > limit for f in fractions):
        with pytest.raises(NpuFallbackError):
            judge_placement(placement, limit)
    else:
        judge_placement(placement, limit)


@given(st.integers(1, 10_000), st.data())
def test_consistent_counts_give_the_cpu_share(total: int, data: st.DataObject) -> None:
    on_cpu = data.draw(st.integers(0, total))
    report = {"deviceStat": [{"name": "all", "nodeNum": total}, {"name": "CPU", "nodeNum": on_cpu}]}
    if on_cpu < total:
        report["deviceStat"].append({"name": "NPU", "nodeNum": total - on_cpu})
    placement = Placement(sources=("r",), ops={d["name"]: d["nodeNum"] for d in report["deviceStat"]})
    assert fallback_fraction(placement) == pytest.approx(on_cpu / total)


# --- where the EP writes it, and the session that judges it -----------------------------------------------------------


def test_the_report_directory_follows_the_options_or_the_documented_defaults(tmp_path: Path) -> None:
    model = tmp_path / "vision.onnx"
    model.write_bytes(b"onnx bytes")
    assert report_directory({"cache_dir": "/c", "cache_key": "k"}, model) == Path("/c/k")
    assert report_directory({"cacheDir": "/c", "cacheKey": "k"}, model) == Path("/c/k")
    default = report_directory({"cache_dir": "/c"}, model)
    assert default == Path("/c") / "80c8830fc02965a11849488fe75d80bb"  # md5 of the model file
    assert report_directory({}, model).parent.parts[-2:] == ("vaip", ".cache")


@pytest.fixture
def fake_vitisai(monkeypatch: pytest.MonkeyPatch) -> list[list]:
    """This onnxruntime build "has" the VitisAI EP: sessions register it (and run on the CPU underneath), as a Ryzen
    AI build would after compiling; returns the provider lists the sessions were given."""
    real_session = onnxruntime.InferenceSession
    requested: list[list] = []

    class VitisSession:
        def __init__(self, path: str, session_options: object, providers: list) -> None:
            requested.append(providers)
            self._session = real_session(path, session_options, providers=["CPUExecutionProvider"])

        def get_providers(self) -> list[str]:
            return [VITISAI, "CPUExecutionProvider"]

        def __getattr__(self, name: str) -> object:
            return getattr(self._session, name)

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [VITISAI, "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", VitisSession)
    return requested


def _vitisai(cache: Path, **kwargs: object) -> OrtOptions:
    return OrtOptions(ep="vitisai", provider_options={"cache_dir": str(cache), "cache_key": "vision"}, **kwargs)


def test_session_with_too_much_cpu_fallback_fails_at_creation(
    add_model: Path, tmp_path: Path, fake_vitisai: list[list]
) -> None:
    (tmp_path / "cache" / "vision").mkdir(parents=True)
    shutil.copy(ERF_REPORT, tmp_path / "cache" / "vision")
    with pytest.raises(NpuFallbackError, match=r"11\.5% of the operators off the NPU.*Erf ×4"):
        AuditedSession(add_model, _vitisai(tmp_path / "cache"))
    assert fake_vitisai[0][0] == (VITISAI, {"cache_dir": str(tmp_path / "cache"), "cache_key": "vision"})


def test_session_within_the_limit_records_the_placement_in_its_audit(
    add_model: Path, tmp_path: Path, fake_vitisai: list[list]
) -> None:
    (tmp_path / "cache" / "vision").mkdir(parents=True)
    shutil.copy(ERF_REPORT, tmp_path / "cache" / "vision")
    session = AuditedSession(add_model, _vitisai(tmp_path / "cache", max_npu_fallback=0.2, allow_fallback=True))
    session.run({"x": np.ones((1, 3), np.float32)})
    placement = session.audit.as_dict()["placement"]
    assert placement["ops"] == {"all": 261, "CPU": 30, "NPU": 231} and placement["max_npu_fallback"] == 0.2
    assert placement["ops_off_npu"] == pytest.approx(30 / 261) and placement["cpu_op_types"]["Erf"] == 4


def test_session_without_a_report_warns_and_is_not_judged(
    add_model: Path, tmp_path: Path, fake_vitisai: list[list], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vlparity.runtime.ort"):
        session = AuditedSession(add_model, _vitisai(tmp_path / "cache"))
    assert session.placement is None and "no placement report" in caplog.text
    with pytest.raises(ProviderFallbackError):  # the profile still shows the CPU doing the work: refused as before
        session.run({"x": np.ones((1, 3), np.float32)})


def test_cpu_sessions_have_no_placement(add_model: Path) -> None:
    session = AuditedSession(add_model, OrtOptions(ep="cpu"))
    session.run({"x": np.ones((1, 3), np.float32)})
    assert session.placement is None and "placement" not in session.audit.as_dict()


def test_the_report_warns_about_operators_left_on_the_cpu() -> None:
    report = build_report()
    placement = parse_placement_report(ERF_REPORT).as_dict(0.2)
    report.paths["onnx-int8"].details["provider_audit"] = {"requested": VITISAI, "placement": placement}
    warning = next(w for w in report_warnings(report) if "VitisAI" in w)
    assert warning.startswith("onnx-int8: VitisAI placed 11.5% of the operators off the NPU (limit 0.2)")
    assert "Erf ×4" in warning
