"""``--suggest-exclusions`` (issue #18) on a model made to fail onnx-qdq's gate: a checkpoint whose block-1 MLP output
projection holds one outlier weight (30× the tensor's largest), which per-tensor int8 cannot hold together with the
rest. The search must name that projection's node, and the graph quantized without it must pass every check."""

from __future__ import annotations

import dataclasses
import shutil

import onnx
import pytest
from safetensors.torch import load_file, save_file

from tests.samples import VISION_SAMPLES
from vlparity.cli import EXIT_PARITY_FAILURE, EXIT_PASS, EXIT_USAGE, main
from vlparity.exclusion_search import rank_nodes, suggest_exclusions
from vlparity.inputs import Sample
from vlparity.runtime.activations import tensor_scopes
from vlparity.session import ParitySession

OUTLIER = 30.0
MLP_OUT = ("mlp.down_proj.weight", "mlp.fc2.weight", "mlp.linear_fc2.weight")  # Qwen2.5-VL, Qwen2-VL, Qwen3-VL
SAMPLES = VISION_SAMPLES[:3]


@pytest.fixture(scope="module")
def outlier_session(parity_session: ParitySession, tmp_path_factory: pytest.TempPathFactory) -> ParitySession:
    model = tmp_path_factory.mktemp("outlier") / "model"
    shutil.copytree(parity_session.context.source.directory, model)
    weights = load_file(model / "model.safetensors")
    name = next(key for key in sorted(weights) if "blocks.1." in key and key.endswith(MLP_OUT))
    weights[name][0, 0] = weights[name].abs().max() * OUTLIER
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    settings = dataclasses.replace(parity_session.settings, model=str(model), paths=("original", "onnx-qdq"))
    return ParitySession(settings)


def _cli(session: ParitySession, *extra: str) -> list[str]:
    """``vlparity run`` on the first samples' image, onnx-qdq only, the session's model and cache."""
    settings = session.settings
    return [
        "run", "--model", str(session.context.source.directory), "--paths", "original,onnx-qdq", "--device", "cpu",
        "--image", str(SAMPLES[0].images[0]), "--max-new-tokens", "4", "--output-dir", str(settings.cache_dir), *extra,
    ]  # fmt: skip


def _mlp_out_node(session: ParitySession) -> str:
    """The fp32 graph's node that computes block 1's MLP output projection."""
    model = onnx.load(str(session.runner("onnx-qdq").float_twin()), load_external_data=False)
    scopes = tensor_scopes(model)
    modules = tuple(f"blocks.1.{name.removesuffix('.weight')}" for name in MLP_OUT)
    (node,) = [n.name for n in model.graph.node if scopes[n.output[0]].endswith(modules)]
    return node


def _failures(session: ParitySession, samples: list[Sample]) -> list[str]:
    checks = [check for sample in samples for check in (
        *session.check_vision("onnx-qdq", sample), session.check_tensors("onnx-qdq", sample),
        session.check_tokens("onnx-qdq", sample),
    )]  # fmt: skip
    return [f"{check.check} {check.sample_id}: {check.reasons[0]}" for check in checks if not check.passed]


def test_an_outlier_weight_fails_the_qdq_gate_naming_its_block(outlier_session: ParitySession) -> None:
    failures = _failures(outlier_session, SAMPLES)
    assert failures and all("in block 1" in failure for failure in failures), failures


def test_the_node_that_reads_the_outlier_ranks_first(outlier_session: ParitySession) -> None:
    assert rank_nodes(outlier_session, SAMPLES)[0] == _mlp_out_node(outlier_session)


def test_the_suggested_exclusions_make_the_graph_pass_every_check(outlier_session: ParitySession) -> None:
    suggestion = suggest_exclusions(outlier_session, SAMPLES)
    assert suggestion.nodes is not None, suggestion.lines()
    assert _mlp_out_node(outlier_session) in suggestion.nodes
    assert any(trial.passed and trial.excluded == len(suggestion.nodes) for trial in suggestion.trials)
    excluded = ParitySession(dataclasses.replace(outlier_session.settings, qdq_exclude=suggestion.nodes))
    assert _failures(excluded, SAMPLES) == []
    assert excluded.runner("onnx-qdq").describe()["qdq_exclude"] == sorted(suggestion.nodes)


def test_the_suggestion_reads_as_a_rerun_command(outlier_session: ParitySession) -> None:
    lines = suggest_exclusions(outlier_session, SAMPLES[:1]).lines()
    assert lines[1].startswith("  --qdq-exclude node_") and "nodes_to_exclude = [" in lines[2]


def test_the_cli_prints_a_list_that_makes_the_next_run_pass(
    outlier_session: ParitySession, capsys: pytest.CaptureFixture
) -> None:
    assert main(_cli(outlier_session, "--suggest-exclusions", "--quiet")) == EXIT_PARITY_FAILURE
    rerun = next(line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("--qdq-"))
    option, nodes = rerun.split(" ", 1)
    assert main(_cli(outlier_session, option, nodes, "--quiet")) == EXIT_PASS
    assert capsys.readouterr().out.strip() == "overall: PASS"


def test_suggest_exclusions_without_onnx_qdq_is_a_usage_error(
    parity_session: ParitySession, capsys: pytest.CaptureFixture
) -> None:
    args = [arg.replace("original,onnx-qdq", "original,onnx-bf16") for arg in _cli(parity_session)]
    assert main([*args, "--suggest-exclusions"]) == EXIT_USAGE
    assert "add onnx-qdq to --paths" in capsys.readouterr().err
