"""The same parity checks on a CUDA device, in float32 and bfloat16. Skipped (with the reason) without a GPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.samples import FIRST_PROMPT, IMAGES
from vlparity.inputs import Sample
from vlparity.session import ParitySession

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_split_matches_original_on_cuda(parity_session: ParitySession, dtype: str) -> None:
    settings = dataclasses.replace(parity_session.settings, device="cuda", dtype=dtype, paths=("original", "split"))
    session = ParitySession(settings)
    report = session.run([Sample((IMAGES[2],), FIRST_PROMPT), Sample((IMAGES[0], IMAGES[3]), FIRST_PROMPT)])
    failures = [f"{c.check} {c.sample_id}: {c.reasons}" for c in report.paths["split"].checks if not c.passed]
    assert report.device.startswith("cuda")
    assert not failures, "\n".join(failures)


def test_cuda_stages_record_peak_gpu_memory(parity_session: ParitySession) -> None:
    session = ParitySession(dataclasses.replace(parity_session.settings, device="cuda", paths=("original", "split")))
    runner = session.runner("split")
    runner.encode_images(Sample((IMAGES[0],), FIRST_PROMPT))
    records = runner.timer.records["vision_encode"]
    assert records and all(record.cuda_peak_bytes and record.cuda_peak_bytes > 0 for record in records)


@pytest.mark.parametrize("path", ["awq", "awq+onnx"])
def test_awq_paths_pass_on_cuda(parity_session: ParitySession, path: str) -> None:
    """The CPU-built AWQ checkpoint loaded on the GPU (gptqmodel's CUDA kernels) passes the same AWQ profile,
    including the kernel/format check against the dequantized float twin."""
    pytest.importorskip("gptqmodel", reason="gptqmodel is not installed (pip install '.[awq]')")
    pytest.importorskip("awq", reason="AutoAWQ is not installed (pip install --no-deps autoawq==0.2.9)")
    session = ParitySession(dataclasses.replace(parity_session.settings, device="cuda", paths=("original", path)))
    report = session.run([Sample((IMAGES[2],), FIRST_PROMPT)])
    checks = report.paths[path].checks
    failures = [f"{c.check} {c.sample_id}: {c.reasons}" for c in checks if not c.passed]
    assert not failures, "\n".join(failures)
    tokens = next(c for c in checks if c.check == "tokens")
    assert tokens.metrics["kernel_max_abs_logit"] is not None and tokens.metrics["kernel_max_abs_logit"] > 0
