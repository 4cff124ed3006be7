"""Same inputs, same verdict, same metrics, bit for bit on CPU: two fresh sessions (every model and artefact loaded
again) judge the same samples through ``split`` and ``onnx``, and their serialised results are identical. A gate whose
numbers wobble between runs cannot be trusted with a zero tolerance."""

from __future__ import annotations

import dataclasses
import json

from tests.samples import FIRST_PROMPT, IMAGES, PROMPTS
from vlparity.inputs import Sample
from vlparity.report.json_report import report_to_dict
from vlparity.runtime.ort import OrtOptions
from vlparity.session import ParitySession, RunSettings

SAMPLES = [
    Sample((IMAGES[3],), FIRST_PROMPT),
    Sample((IMAGES[3], IMAGES[5]), "Compare the two images."),
    Sample((), PROMPTS[1]),
]


def judged(settings: RunSettings) -> str:
    """Every check's verdict, reasons, metrics and plot series as JSON (timings and memory are not results)."""
    session = ParitySession(settings)
    session.run(SAMPLES)
    paths = report_to_dict(session.report())["paths"]
    return json.dumps({name: path["checks"] for name, path in paths.items()}, sort_keys=True)


def test_two_fresh_cpu_sessions_give_identical_verdicts_and_metrics(parity_session: ParitySession) -> None:
    settings = dataclasses.replace(
        parity_session.settings, device="cpu", dtype="float32", paths=("original", "split", "onnx"), ort=OrtOptions()
    )
    first, second = judged(settings), judged(settings)
    assert json.loads(first)["onnx"], "the onnx path was judged"
    assert first == second
