"""ONNX Runtime sessions: EP selection errors, and the provider audit that refuses a silent CPU fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from vlparity.errors import UsageError
from vlparity.runtime.ort import (
    AuditedSession,
    OrtOptions,
    ProviderFallbackError,
    parse_provider_options,
    requested_provider,
)

HAS_CUDA_EP = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def test_cpu_session_audit_records_the_provider_that_ran_the_nodes(add_model: Path) -> None:
    session = AuditedSession(add_model, OrtOptions(ep="cpu"))
    (out,) = session.run({"x": np.ones((2, 3), np.float32)})
    assert np.array_equal(out, np.full((2, 3), 2, np.float32))
    assert session.audit.requested == "CPUExecutionProvider"
    assert session.audit.nodes_per_provider.get("CPUExecutionProvider", 0) >= 1
    assert not list(add_model.parent.glob(".ort-profile*")), "the profile file is cleaned up"


def test_sessions_do_not_spin_their_threads_between_runs(add_model: Path) -> None:
    """The torch LM runs right after the ORT vision encoder; busy-waiting pool threads would share its cores."""
    options = AuditedSession(add_model, OrtOptions(ep="cpu")).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_requested_provider_that_did_no_work_fails_the_run(add_model: Path, tmp_path: Path) -> None:
    session = AuditedSession(add_model, OrtOptions(ep="cpu"))
    session.provider = "CUDAExecutionProvider"  # as if CUDA had been requested and ORT had fallen back to CPU
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps([{"cat": "Node", "name": "add_kernel_time", "args": {"provider": "CPUExecutionProvider"}}])
    )
    with pytest.raises(ProviderFallbackError, match="executed no node"):
        session._audit(profile)


def test_fallback_is_accepted_only_when_allowed(add_model: Path, tmp_path: Path) -> None:
    session = AuditedSession(add_model, OrtOptions(ep="cpu", allow_fallback=True))
    session.provider = "CUDAExecutionProvider"
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps([{"cat": "Node", "name": "add_kernel_time", "args": {"provider": "CPUExecutionProvider"}}])
    )
    audit = session._audit(profile)
    assert not audit.requested_did_work and audit.fallback_allowed


def test_unknown_ep_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cpu, cuda, vitisai"):
        requested_provider(OrtOptions(ep="tensorrt"))


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime build has the CUDA EP")
def test_ep_missing_from_this_build_lists_the_available_ones() -> None:
    with pytest.raises(UsageError, match=r"no CUDAExecutionProvider; available: .*CPUExecutionProvider"):
        requested_provider(OrtOptions(ep="cuda"))


def test_vitisai_missing_names_the_remedy() -> None:
    if "VitisAIExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has the VitisAI EP")
    with pytest.raises(UsageError, match="Ryzen AI"):
        requested_provider(OrtOptions(ep="vitisai", provider_options={"config_file": "vaip_config.json"}))


def test_auto_prefers_cuda_when_present() -> None:
    expected = "CUDAExecutionProvider" if HAS_CUDA_EP else "CPUExecutionProvider"
    assert requested_provider(OrtOptions(ep="auto")) == expected


def test_provider_options_parse_key_value_pairs() -> None:
    assert parse_provider_options(["config_file=a.json", "device_id=0"]) == {"config_file": "a.json", "device_id": "0"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_provider_options(["config_file"])


def test_missing_model_file_is_an_artefact_error(tmp_path: Path) -> None:
    from vlparity.errors import ArtefactError

    with pytest.raises(ArtefactError, match="not found"):
        AuditedSession(tmp_path / "absent.onnx", OrtOptions())
