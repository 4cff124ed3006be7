"""``vlparity`` command line: a thin layer over ``ParitySession`` and the report renderers.

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
from vlparity.session import DEFAULT_CACHE_DIR, ParitySession, RunSettings

EXIT_PASS, EXIT_PARITY_FAILURE, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  vlparity run                                   # bundled Qwen2.5-VL fixture, original vs split, fixture images
  vlparity run --model fixtures/qwen2_vl --paths original,split --report-json out/report.json
  vlparity run --model Qwen/Qwen2.5-VL-3B-Instruct --device cuda --image cat.jpg --prompt "Describe the image."
  vlparity run --image a.png,b.png --prompt "Compare the two images."   # one prompt with two images
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message short and ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"vlparity: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vlparity",
        description="Prove that a split / exported / quantized vision-language model still behaves like the original.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vlparity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="run paths on samples, judge them against 'original', print the parity table",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--model", "--model-id", default=None, help="local checkpoint dir or hub id (default: bundled fixture)"
    )
    run.add_argument(
        "--paths",
        default="original,split",
        help=f"comma-separated paths from {', '.join(PATHS)}, or 'all' (default: original,split)",
    )
    run.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE[,FILE…]",
        help="image file; repeat for more samples, join with commas for several images in one prompt "
        "(default: the fixture images)",
    )
    run.add_argument("--prompt", default=None, help=f"prompt text (default: {fixture_prompts()[0]!r})")
    run.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:N (default: auto)")
    run.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="model dtype (auto: float32 on CPU)")
    run.add_argument("--max-new-tokens", "--max-tokens", type=int, default=16, help="greedy tokens per sample")
    run.add_argument("--output-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where artefacts are built and cached")
    run.add_argument("--report-json", type=Path, default=None, help="write the JSON report here")
    verbosity = run.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", action="store_true", help="print only the verdict line")
    verbosity.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument("--debug", action="store_true", help="show tracebacks for expected errors too")
    return parser


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
    settings = RunSettings(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        paths=tuple(args.paths.split(",")),
        max_new_tokens=args.max_new_tokens,
        cache_dir=args.output_dir,
    )
    session = ParitySession(settings)
    samples = samples_from_args(args.image, args.prompt)
    for sample in samples:  # fail on a bad image before any model work
        sample.validate()
    report = session.run(samples, progress=not args.quiet)
    if args.report_json:
        write_json_report(report, args.report_json)
    print(render_table(report).splitlines()[-1] if args.quiet else render_table(report))
    return EXIT_PASS if report.passed else EXIT_PARITY_FAILURE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else getattr(logging, args.log_level),
        format="vlparity: %(message)s",
        stream=sys.stderr,
    )
    try:
        return command_run(args)
    except VlparityError as exc:
        if args.debug:
            raise
        print(f"vlparity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
