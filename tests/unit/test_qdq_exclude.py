"""``--qdq-exclude`` (issue #18): nodes of the vision graph kept in float by onnx-qdq, as ORT's and Quark's
``nodes_to_exclude``. Names come as a list or a file, are part of the cache key, must be nodes of the fp32 graph
(else exit 2 naming the closest), and an excluded node really reads float inputs in the written model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from vlparity.cli import COMMANDS, EXIT_PASS, EXIT_USAGE, build_parser, main, settings_from_args
from vlparity.errors import UsageError
from vlparity.export import qdq
from vlparity.export.onnx_vision import MODEL_NAME, ExportSettings
from vlparity.inputs import fixture_images
from vlparity.model_source import DEFAULT_MODEL, resolve_model
from vlparity.paths.base import PathContext
from vlparity.paths.onnx import build_onnx_vision, onnx_cache_dir

IMAGES = [str(fixture_images()[0]), str(fixture_images()[5])]
FAST = ["--max-new-tokens", "4", "--device", "cpu", *(arg for image in IMAGES for arg in ("--image", image))]


# --- parsing ---------------------------------------------------------------------------------------------------------


def test_names_from_a_list_are_sorted_and_unique() -> None:
    assert qdq.parse_qdq_exclude(["node_b, node_a", "node_c,,node_a ", ""]) == ("node_a", "node_b", "node_c")


@pytest.mark.parametrize(
    "text",
    ["node_b\n\n# kept in float: the MLP\nnode_a\n  node_b  \n", '["node_b", "node_a", "node_b"]\n'],
    ids=["one per line", "json list"],
)
def test_names_from_a_file(text: str, tmp_path: Path) -> None:
    (tmp_path / "float-nodes").write_text(text)
    names = qdq.parse_qdq_exclude([f"@{tmp_path / 'float-nodes'}", "node_c"])
    assert names == ("node_a", "node_b", "node_c")
    assert qdq.parse_qdq_exclude([f"node_d,@{tmp_path / 'float-nodes'}"]) == ("node_a", "node_b", "node_d")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ('["node_a", ', "not a valid JSON list"),
        ('{"nodes": ["node_a"]}', "expected a JSON list of node names"),
        ('["node_a", 3]', "expected a JSON list of node names"),
        (b"\xff\xfe\x00", "cannot read it"),
    ],
    ids=["missing", "broken json", "json object", "json non-string", "not utf-8"],
)
def test_a_bad_file_is_a_usage_error_naming_it(content: str | bytes | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "float-nodes.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=rf"^--qdq-exclude @{path}: {message}"):
        qdq.parse_qdq_exclude([f"@{path}"])


def test_every_subcommand_with_qdq_config_takes_qdq_exclude(tmp_path: Path) -> None:
    """One definition, with --qdq-config: every judging subcommand and export-onnx; the rest refuse both."""
    (tmp_path / "nodes.txt").write_text("node_b\n")
    with_config = []
    for name in COMMANDS:
        try:
            build_parser().parse_args([name, "--qdq-config", "a8w8"])
        except UsageError:
            with pytest.raises(UsageError, match="unrecognized arguments: --qdq-exclude"):
                build_parser().parse_args([name, "--qdq-exclude", "node_a"])
            continue
        with_config.append(name)
        args = build_parser().parse_args(
            [name, "--qdq-exclude", "node_c,node_a", "--qdq-exclude", f"@{tmp_path}/nodes.txt"]
        )
        assert settings_from_args(args, ("original",)).qdq_exclude == ("node_a", "node_b", "node_c")
    assert {"run", "run-onnx", "export-onnx"} <= set(with_config)


def test_a_missing_file_through_the_cli_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.txt"
    code = main(["run", "--paths", "original,onnx-qdq", "--qdq-exclude", f"@{missing}", *FAST, "--quiet"])
    assert code == EXIT_USAGE
    assert f"--qdq-exclude @{missing}: no such file" in capsys.readouterr().err


# --- the fallback quantizer on a small graph ------------------------------------------------------------------------


def _shared_model() -> onnx.ModelProto:
    """Two MatMuls reading the same input and the same weight: quantizing one quantizes both tensors."""
    weight = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"], name="quantized"),
            helper.make_node("MatMul", ["x", "w"], ["b"], name="kept"),
            helper.make_node("Add", ["a", "b"], ["y"], name="sum"),
        ],
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 4]) for name in ("y", "b")],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


FEEDS = [{"x": np.random.default_rng(seed).standard_normal((5, 8)).astype(np.float32)} for seed in range(3)]


def _dequantized_inputs(model: onnx.ModelProto, node_name: str) -> list[str]:
    """The inputs of ``node_name`` that a DequantizeLinear produces."""
    producers = {output: node for node in model.graph.node for output in node.output}
    (node,) = [node for node in model.graph.node if node.name == node_name]
    return [name for name in node.input if name in producers and producers[name].op_type == "DequantizeLinear"]


@pytest.mark.parametrize("config", qdq.QDQ_CONFIGS)
def test_an_excluded_node_computes_in_float_on_float_inputs(
    config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ORT's nodes_to_exclude alone still feeds the excluded node the dequantized input and weight (they are quantized
    for its neighbour); vlparity wires it back to the float tensors, restoring the float weight: its output is the
    float MatMul's, bit for bit, while the neighbour stays quantized."""
    monkeypatch.setattr(qdq, "quark_available", lambda: False)
    onnx.save(_shared_model(), tmp_path / "fp32.onnx")
    qdq.quantize_qdq(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", FEEDS, config, nodes_to_exclude=["kept"])
    model = onnx.load(tmp_path / "qdq.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert _dequantized_inputs(model, "kept") == []
    assert len(_dequantized_inputs(model, "quantized")) == 2
    weight = numpy_helper.to_array(_shared_model().graph.initializer[0])
    session = ort.InferenceSession(str(tmp_path / "qdq.onnx"), providers=["CPUExecutionProvider"])
    x = FEEDS[1]["x"]
    float_run = ort.InferenceSession(str(tmp_path / "fp32.onnx"), providers=["CPUExecutionProvider"])
    y, b = session.run(["y", "b"], {"x": x})
    np.testing.assert_array_equal(b, float_run.run(["b"], {"x": x})[0])
    assert np.abs((y - b) - x @ weight).max() > 1e-4, "the neighbour is still quantized"


def test_unknown_names_are_refused_before_quantizing(tmp_path: Path) -> None:
    onnx.save(_shared_model(), tmp_path / "fp32.onnx")
    with pytest.raises(UsageError) as refused:
        qdq.quantize_qdq(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", FEEDS, "a8w8", ["kpet", "kept", "zzzz"])
    message = str(refused.value)
    assert "2 name(s) not among the 3 nodes" in message and str(tmp_path / "fp32.onnx") in message
    assert "'kpet' (closest: kept" in message and "'zzzz' (closest: none)" in message
    assert not (tmp_path / "qdq.onnx").exists()


# --- the fixture's vision graph --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(request: pytest.FixtureRequest) -> Path:
    return request.config.rootpath / ".vlparity-cache"  # shared with the parity suite: artefacts are reused


@pytest.fixture(scope="module")
def context(cache: Path) -> PathContext:
    return PathContext(resolve_model(DEFAULT_MODEL), torch.device("cpu"), torch.float32, cache)


@pytest.fixture(scope="module")
def excluded(context: PathContext) -> list[str]:
    """Three nodes that read dequantized values in the fixture's default onnx-qdq graph: the first Gemm and the first
    Mul whose dequantized input another node reads too (ORT's own exclusion would still hand them the dequantized
    copy; on the fixture an MLP projection sharing its input with its twin, and a rotary-embedding Mul), and the first
    Add."""
    graph = onnx.load(str(build_onnx_vision(context, ExportSettings("qdq")) / MODEL_NAME)).graph
    readers = Counter(name for node in graph.node for name in node.input)
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}

    def first(op_type: str, shared: bool) -> str:
        return next(
            node.name
            for node in graph.node
            if node.op_type == op_type and any(name in dequantized and readers[name] > shared for name in node.input)
        )

    return [first("Gemm", shared=True), first("Mul", shared=True), first("Add", shared=False)]


def test_the_cache_key_changes_with_the_list_not_its_order(context: PathContext, excluded: list[str]) -> None:
    plain, one = ExportSettings("qdq"), ExportSettings("qdq", qdq_exclude=(excluded[0],))
    both, reordered = (ExportSettings("qdq", qdq_exclude=names) for names in (excluded[:2], excluded[1::-1] * 2))
    assert both.qdq_exclude == reordered.qdq_exclude == tuple(sorted(excluded[:2]))
    assert both.key() == reordered.key()
    directories = {onnx_cache_dir(context, settings) for settings in (plain, one, both, reordered)}
    assert len(directories) == 3
    assert plain.key()["qdq_exclude"] == [] and one.key()["qdq_exclude"] == [excluded[0]]


@pytest.fixture(scope="module")
def excluded_run(cache: Path, excluded: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    """``vlparity run --paths original,onnx-qdq`` with the three nodes excluded: exit code and the JSON report."""
    report = tmp_path_factory.mktemp("qdq-exclude") / "report.json"
    lists = ["--qdq-exclude", ",".join(excluded[:2]), "--qdq-exclude", excluded[2]]
    outputs = ["--output-dir", str(cache), "--report-json", str(report), "--quiet"]
    code = main(["run", "--paths", "original,onnx-qdq", *lists, *FAST, *outputs])
    return code, json.loads(report.read_text())


def test_the_excluded_model_passes_and_the_report_names_the_nodes(
    excluded_run: tuple[int, dict], excluded: list[str]
) -> None:
    code, report = excluded_run
    assert code == EXIT_PASS
    details = report["paths"]["onnx-qdq"]["details"]
    assert details["qdq_exclude"] == sorted(excluded)
    assert report["paths"]["onnx-qdq"]["passed"] is True


def test_excluded_nodes_are_left_unquantized_in_the_written_model(
    excluded_run: tuple[int, dict], excluded: list[str], context: PathContext
) -> None:
    """Without the list each of the three reads a dequantized input (``excluded``); with it, none, and the stamped
    metadata says which nodes were kept in float."""
    onnx_dir = Path(excluded_run[1]["paths"]["onnx-qdq"]["details"]["onnx_dir"])
    model = onnx.load(str(onnx_dir / MODEL_NAME))
    assert {name: _dequantized_inputs(model, name) for name in excluded} == {name: [] for name in excluded}
    assert json.loads({p.key: p.value for p in model.metadata_props}["qdq_exclude"]) == sorted(excluded)
    plain = onnx.load(str(build_onnx_vision(context, ExportSettings("qdq")) / MODEL_NAME))
    assert all(_dequantized_inputs(plain, name) for name in excluded)
    dequantize = [sum(node.op_type == "DequantizeLinear" for node in m.graph.node) for m in (model, plain)]
    assert 100 < dequantize[0] < dequantize[1], "the rest stays quantized; what only the excluded nodes read is gone"


def test_an_unknown_node_exits_2_naming_the_closest(
    cache: Path, excluded: list[str], capsys: pytest.CaptureFixture
) -> None:
    gemm = excluded[0]
    typo = gemm.replace("linear", "lienar") if "linear" in gemm else gemm + "x"
    code = main(["export-onnx", "--precision", "qdq", "--qdq-exclude", f"{typo},{excluded[1]}",
                 "--output-dir", str(cache), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "--qdq-exclude: 1 name(s) not among the" in err and f"{typo!r} (closest: {gemm}" in err
    assert "Traceback" not in err
