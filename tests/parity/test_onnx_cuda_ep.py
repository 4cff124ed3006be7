"""The ``onnx`` path on ONNX Runtime's CUDA execution provider, with the provider audit proving where it ran.

Skipped (with the reason) where this onnxruntime build has no CUDA EP, e.g. the CPU wheel or a machine without a GPU.
"""

from __future__ import annotations

import dataclasses

import onnxruntime
import pytest

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.inputs import Sample
from vlparity.runtime.ort import OrtOptions
from vlparity.session import ParitySession

pytestmark = pytest.mark.skipif(
    "CUDAExecutionProvider" not in onnxruntime.get_available_providers(),
    reason="this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)",
)


def test_onnx_path_runs_on_the_cuda_ep_and_the_audit_proves_it(parity_session: ParitySession) -> None:
    settings = dataclasses.replace(parity_session.settings, paths=("original", "onnx"), ort=OrtOptions(ep="cuda"))
    session = ParitySession(settings)
    results = session.check_vision("onnx", Sample((IMAGES[2],), FIRST_PROMPT))
    assert all(result.passed for result in results), [result.reasons for result in results]
    audit = session.runner("onnx").session.audit
    assert audit.requested == "CUDAExecutionProvider"
    assert audit.nodes_per_provider.get("CUDAExecutionProvider", 0) > 0
