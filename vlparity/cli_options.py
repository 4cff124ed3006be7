"""The CLI's option sets, each defined once. The judging subcommands share all of them (``JUDGE_OPTIONS``); the
building subcommands take the model set plus their own few options (``EXTRA_OPTIONS``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from vlparity.devices import DEVICE_CHOICES, DEVICE_MAP_CHOICES, DTYPE_CHOICES
from vlparity.exclusion_search import DEFAULT_MAX_TRIALS
from vlparity.export.onnx_vision import PRECISIONS
from vlparity.export.qdq import DEFAULT_QDQ_CONFIG, QDQ_CONFIGS
from vlparity.inputs import fixture_prompts
from vlparity.paths import PATHS
from vlparity.runtime.ort import EP_CHOICES, OPTIMIZATION_LEVELS
from vlparity.runtime.vitisai import DEFAULT_MAX_NPU_FALLBACK
from vlparity.session import DEFAULT_CACHE_DIR
from vlparity.static_shape import parse_static_shape

REPORT_SUFFIXES = {"report_json": (".json",), "report_md": (".md",), "report_html": (".html", ".htm")}
REPORT_KINDS = {"report_json": "JSON", "report_md": "Markdown", "report_html": "self-contained HTML"}


def _model_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument("--model", "--model-id", default=None, help="local checkpoint dir or hub id (default: fixture)")
    model.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto)")
    model.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="model dtype (auto: float32)")
    model.add_argument(
        "--device-map", default=None, choices=DEVICE_MAP_CHOICES,
        help="place the language model over every visible device with accelerate (for models larger than one GPU; "
        "default: all of it on --device)",
    )  # fmt: skip
    model.add_argument(
        "--trust-remote-code", action="store_true",
        help="let transformers run Python code shipped with the checkpoint (off by default: only trusted models)",
    )  # fmt: skip
    model.add_argument(
        "--output-dir", type=Path, default=DEFAULT_CACHE_DIR,
        help="where artefacts are built and cached, keyed by content hash; bundle: the bundle's own new directory "
        "(default: %(default)s)",
    )  # fmt: skip
    output = common.add_argument_group("output")
    verbosity = output.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", action="store_true", help="print only the result; no progress bars")
    verbosity.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    output.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    output.add_argument("--debug", action="store_true", help="show tracebacks for expected errors too")
    return common


def _input_options() -> argparse.ArgumentParser:
    inputs = argparse.ArgumentParser(add_help=False)
    group = inputs.add_argument_group("inputs")
    group.add_argument(
        "--image", action="append", default=[], metavar="FILE|DIR|GLOB[,…]",
        help="image file, folder (its images, sorted) or quoted glob ('imgs/*.png'); repeat for more samples, join "
        "with commas for several images in one prompt (default: the fixture images)",
    )  # fmt: skip
    group.add_argument("--prompt", default=None, help=f"prompt text (default: {fixture_prompts()[0]!r})")
    group.add_argument("--max-new-tokens", "--max-tokens", type=int, default=16, help="greedy tokens per sample")
    group.add_argument(
        "--eval-set", default=None, metavar="easy-vqa[A:B]|FILE.jsonl",
        help="also score every path's answers to these questions and judge the accuracy drop against original "
        "(max_accuracy_drop): easy-vqa, easy-vqa[:N], easy-vqa[A:B] (pip install 'vlparity[eval]') or a JSONL file of "
        '{"image": ..., "question": ..., "answer": ...} lines',
    )  # fmt: skip
    return inputs


def _ort_options() -> argparse.ArgumentParser:
    ort = argparse.ArgumentParser(add_help=False)
    group = ort.add_argument_group("onnx runtime")
    group.add_argument("--ep", default="cpu", choices=EP_CHOICES, help="execution provider (default: cpu)")
    group.add_argument(
        "--ep-option", action="append", default=[], metavar="KEY=VALUE",
        help="provider option, repeatable (e.g. config_file=vaip_config.json for VitisAI)",
    )  # fmt: skip
    group.add_argument(
        "--allow-ep-fallback", action="store_true",
        help="accept a run in which the requested EP executed no node (ORT fell back to CPU)",
    )  # fmt: skip
    group.add_argument("--ort-optimization", default="all", choices=OPTIMIZATION_LEVELS, help="graph optimization")
    group.add_argument(
        "--max-npu-fallback", type=float, default=DEFAULT_MAX_NPU_FALLBACK, metavar="FRACTION",
        help="--ep vitisai: fail when more than this share of the operators or GOPs is placed off the NPU, as the "
        "compiler's placement report says (default: %(default)s; 1 accepts any placement)",
    )  # fmt: skip
    return ort


def _shape_options() -> argparse.ArgumentParser:
    """``--static-shape``: one option, for the judging subcommands and export-onnx alike."""
    shape = argparse.ArgumentParser(add_help=False)
    group = shape.add_argument_group("fixed input shape (NPU)")
    group.add_argument(
        "--static-shape", type=parse_static_shape, default=None, metavar="WxH",
        help="resize every image to exactly W×H pixels before the processor, for every path (original included); the "
        "onnx* paths export the vision encoder for that size only: opset 17, no dynamic axes (e.g. 448x448; both "
        "sides multiples of patch_size × merge_size, 28 for Qwen2-VL/Qwen2.5-VL)",
    )  # fmt: skip
    group.add_argument(
        "--qdq-config", choices=QDQ_CONFIGS, default=DEFAULT_QDQ_CONFIG,
        help="onnx-qdq's static int8 scheme, as AMD Quark names them: xint8 (power-of-two scales), a8w8, a16w8 "
        "(int16 activations); AMD Quark quantizes when installed, else onnxruntime's quantize_static "
        "(default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--qdq-exclude", action="append", default=[], metavar="NODE[,NODE…]|@FILE",
        help="onnx-qdq: keep these nodes of the vision graph in float (nodes_to_exclude, as ORT's and Quark's "
        "quantizers call it); comma-separated, repeatable; @FILE reads one node name per line or a JSON list. A "
        "name that is not a node of the fp32 export is refused, naming the closest ones",
    )  # fmt: skip
    return shape


def _exclusion_options() -> argparse.ArgumentParser:
    """``--suggest-exclusions``: judging subcommands only (it re-quantizes and re-judges onnx-qdq)."""
    search = argparse.ArgumentParser(add_help=False)
    group = search.add_argument_group("onnx-qdq exclusion search")
    group.add_argument(
        "--suggest-exclusions", action="store_true",
        help="when onnx-qdq fails, search the nodes whose exclusion from quantization (kept in float) restores its "
        "vision gate and per-tensor table, and print them as a --qdq-exclude / nodes_to_exclude list (a bounded "
        "greedy search: each trial re-quantizes and re-judges; the verdict of this run is unchanged)",
    )  # fmt: skip
    group.add_argument(
        "--max-exclusion-trials", type=int, default=DEFAULT_MAX_TRIALS, metavar="N",
        help="--suggest-exclusions: at most N quantize-and-judge trials (default: %(default)s)",
    )  # fmt: skip
    return search


def _report_options() -> argparse.ArgumentParser:
    reports = argparse.ArgumentParser(add_help=False)
    group = reports.add_argument_group("reports")
    for dest, kind in REPORT_KINDS.items():
        option = f"--{dest.replace('_', '-')}"
        group.add_argument(option, type=Path, default=None, metavar="FILE", help=f"write the {kind} report here")
    return reports


def _quantize_option() -> argparse.ArgumentParser:
    quantize = argparse.ArgumentParser(add_help=False)
    quantize.add_argument(
        "--quantize", action="store_true",
        help="use the AWQ int4 language model: split→awq, onnx→awq+onnx (run alone: original,awq,awq+onnx); "
        "bundle: ship the AWQ LM",
    )  # fmt: skip
    return quantize


def _external_options() -> argparse.ArgumentParser:
    external = argparse.ArgumentParser(add_help=False)
    group = external.add_argument_group(
        "bring your own artefact", "judge an artefact built elsewhere instead of building one (contract-checked first)"
    )
    group.add_argument("--onnx-vision", type=Path, metavar="FILE", help="ONNX vision encoder, judged as onnx")
    group.add_argument("--awq-model", type=Path, metavar="DIR", help="AWQ checkpoint, judged as awq")
    group.add_argument("--split-dir", type=Path, metavar="DIR", help="split (vision/ + language/), judged as split")
    return external


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--paths", default=None,
        help=f"comma-separated from {', '.join(PATHS)}, or all (default: all; with --quantize original,awq,awq+onnx)",
    )  # fmt: skip


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision", action="append", choices=PRECISIONS, default=None,
        help="variant(s) to write, repeatable (default: fp32)",
    )  # fmt: skip


def _add_awq_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-size", type=int, default=128, help="AWQ group size (default: 128)")
    parser.add_argument("--calib-file", type=Path, default=None, help="JSON list of calibration texts")


def _add_bundle_options(parser: argparse.ArgumentParser) -> None:
    """For bundle, --output-dir is the bundle itself (new or empty): the export, split and AWQ it copies are cached in
    --cache-dir."""
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
        help="where the export, split and AWQ checkpoint are built and cached (default: %(default)s)",
    )  # fmt: skip
    parser.set_defaults(output_dir=None)


EXTRA_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "run": _add_run_options,
    "export-onnx": _add_export_options,
    "quantize-awq": _add_awq_options,
    "bundle": _add_bundle_options,
}
OPTION_SETS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "model": _model_options,
    "inputs": _input_options,
    "ort": _ort_options,
    "shape": _shape_options,
    "exclusions": _exclusion_options,
    "reports": _report_options,
    "quantize": _quantize_option,
    "external": _external_options,
}
JUDGE_OPTIONS = tuple(OPTION_SETS)
BUILD_OPTIONS = ("model",)
EXPORT_OPTIONS = (*BUILD_OPTIONS, "shape")
