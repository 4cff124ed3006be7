"""``vlparity`` command line: a thin layer over ``ParitySession``, the exporters and the report renderers.

Exit codes: 0 every path passed, 1 a parity check failed, 2 bad usage or input (no traceback unless --debug).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vlparity import __version__
from vlparity.devices import DEVICE_CHOICES, DTYPE_CHOICES
from vlparity.errors import UsageError, VlparityError
from vlparity.inputs import Sample, default_samples, fixture_prompts
from vlparity.paths import PATHS
from vlparity.runtime.ort import EP_CHOICES, OPTIMIZATION_LEVELS, OrtOptions, parse_provider_options
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession, RunSettings

EXIT_PASS, EXIT_PARITY_FAILURE, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  vlparity run                                   # bundled Qwen2.5-VL fixture, original vs split, fixture images
  vlparity run --paths original,onnx,onnx-fp16,onnx-int8 --ep cpu --report-json out/report.json
  vlparity run --model fixtures/qwen2_vl --paths all
  vlparity run --model Qwen/Qwen2.5-VL-3B-Instruct --device cuda --ep cuda --image cat.jpg --prompt "Describe it."
  vlparity run --image a.png,b.png --prompt "Compare the two images."   # one prompt with two images
  vlparity export-onnx --precision fp32 --precision int8 --output-dir out/onnx
"""
EXPORT_EXAMPLE = "example:\n  vlparity export-onnx --model fixtures/qwen2_vl --precision fp32 --precision int8"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message short and ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"vlparity: error: {message}\n")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument("--model", "--model-id", default=None, help="local checkpoint dir or hub id (default: fixture)")
    model.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto)")
    model.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="model dtype (auto: float32)")
    model.add_argument("--output-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where artefacts are built/cached")
    output = common.add_argument_group("output")
    verbosity = output.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", action="store_true", help="print only the result")
    verbosity.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    output.add_argument("--debug", action="store_true", help="show tracebacks for expected errors too")
    return common


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
    return ort


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vlparity",
        description="Prove that a split / exported / quantized vision-language model still behaves like the original.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vlparity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common, ort = _common_options(), _ort_options()
    run = commands.add_parser(
        "run",
        parents=[common, ort],
        help="run paths on samples, judge them against 'original', print the parity table",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--paths",
        default="all",
        help=f"comma-separated from {', '.join(PATHS)}, or all (default: %(default)s)",
    )
    run.add_argument(
        "--image", action="append", default=[], metavar="FILE[,FILE…]",
        help="image file; repeat for more samples, join with commas for several images in one prompt "
        "(default: the fixture images)",
    )  # fmt: skip
    run.add_argument(
        "--quantize", action="store_true", help="run the AWQ paths: original,awq,awq+onnx (the seed's --quantize)"
    )
    run.add_argument("--prompt", default=None, help=f"prompt text (default: {fixture_prompts()[0]!r})")
    run.add_argument("--max-new-tokens", "--max-tokens", type=int, default=16, help="greedy tokens per sample")
    run.add_argument("--report-json", type=Path, default=None, help="write the JSON report here")
    run.set_defaults(handler=command_run)

    export = commands.add_parser(
        "export-onnx",
        parents=[common],
        help="export the vision encoder to ONNX (validated, cached by content hash) and print where it is",
        epilog=EXPORT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--precision", action="append", choices=["fp32", "fp16", "int8"], default=None,
        help="variant(s) to write, repeatable (default: fp32)",
    )  # fmt: skip
    export.set_defaults(handler=command_export_onnx)

    quantize = commands.add_parser(
        "quantize-awq",
        parents=[common],
        help="quantize the language model to AWQ int4 (AutoAWQ; cached by content hash) and print where it is",
        epilog="example:\n  vlparity quantize-awq --model fixtures/qwen2_vl --group-size 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    quantize.add_argument("--group-size", type=int, default=128, help="AWQ group size (default: 128)")
    quantize.add_argument("--calib-file", type=Path, default=None, help="JSON list of calibration texts")
    quantize.set_defaults(handler=command_quantize_awq)
    return parser


def settings_from_args(args: argparse.Namespace, paths: tuple[str, ...]) -> RunSettings:
    ort = OrtOptions(
        ep=getattr(args, "ep", "cpu"),
        provider_options=parse_provider_options(getattr(args, "ep_option", [])),
        allow_fallback=getattr(args, "allow_ep_fallback", False),
        graph_optimization=getattr(args, "ort_optimization", "all"),
    )
    return RunSettings(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        paths=paths,
        max_new_tokens=getattr(args, "max_new_tokens", 16),
        cache_dir=args.output_dir,
        ort=ort,
    )


def samples_from_args(images: list[str], prompt: str | None) -> list[Sample]:
    if not images:
        samples = default_samples()
        return [Sample(sample.images, prompt) for sample in samples] if prompt else samples
    prompt = prompt or fixture_prompts()[0]
    return [Sample(tuple(Path(part) for part in spec.split(",") if part), prompt) for spec in images]


def command_run(args: argparse.Namespace) -> int:
    from vlparity.report.json_report import write_json_report
    from vlparity.report.table import render_table

    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens {args.max_new_tokens}: must be at least 1.")
    paths = ("original", "awq", "awq+onnx") if args.quantize else tuple(args.paths.split(","))
    session = ParitySession(settings_from_args(args, paths))
    samples = samples_from_args(args.image, args.prompt)
    for sample in samples:  # fail on a bad image before any model work
        sample.validate()
    report = session.run(samples, progress=not args.quiet)
    if args.report_json:
        write_json_report(report, args.report_json)
    print(render_table(report).splitlines()[-1] if args.quiet else render_table(report))
    return EXIT_PASS if report.passed else EXIT_PARITY_FAILURE


def command_export_onnx(args: argparse.Namespace) -> int:
    from vlparity.export.onnx_vision import ExportSettings
    from vlparity.paths.onnx import build_onnx_vision

    session = ParitySession(settings_from_args(args, ("original",)))
    for precision in args.precision or ["fp32"]:
        directory = build_onnx_vision(session.context, ExportSettings(precision))
        print(f"{precision}: {directory / 'vision.onnx'}")
    return EXIT_PASS


def command_quantize_awq(args: argparse.Namespace) -> int:
    import dataclasses

    from vlparity.paths.awq import build_awq
    from vlparity.quantize.awq import AwqSettings

    settings = AwqSettings(group_size=args.group_size)
    if args.calib_file is not None:
        settings = dataclasses.replace(settings, calibration_file=args.calib_file)
    session = ParitySession(settings_from_args(args, ("original",)))
    print(build_awq(session.context, settings))
    return EXIT_PASS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else getattr(logging, args.log_level),
        format="vlparity: %(message)s",
        stream=sys.stderr,
    )
    if args.log_level != "DEBUG":
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        return args.handler(args)
    except VlparityError as exc:
        if args.debug:
            raise
        print(f"vlparity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
