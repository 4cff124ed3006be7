"""``vlparity`` command line: a thin layer over ``ParitySession``, the exporters, the contracts and the report writers.

One subcommand per mode of the original design. The judging modes (``original``, ``split``, ``run-onnx``, ``run-awq``,
``run``) share one option set; the building modes (``export-onnx``, ``quantize-awq``, ``bundle``) take its model part.
Exit codes: 0 every path passed, 1 a parity check failed, 2 bad usage or input (no traceback unless --debug) or a
crash (a bug in vlparity: its traceback is printed; a crash is never read as a verdict), 130 interrupted (nothing
partial is left: artefacts are built under a temporary name and renamed into place). Nothing but a judged parity
failure exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vlparity import __version__, progress
from vlparity.cli_options import (
    BUILD_OPTIONS,
    EXPORT_OPTIONS,
    EXTRA_OPTIONS,
    JUDGE_OPTIONS,
    OPTION_SETS,
    REPORT_SUFFIXES,
)
from vlparity.errors import OutputNotWritableError, UsageError, VlparityError
from vlparity.eval_sets import EvalSet, load_eval_set
from vlparity.export.qdq import DEFAULT_QDQ_CONFIG, parse_qdq_exclude
from vlparity.image_specs import samples_from_specs
from vlparity.inputs import Sample
from vlparity.paths import REFERENCE_PATH, parse_path_names
from vlparity.paths.byo import ExternalArtefacts, external_runners, judged_paths
from vlparity.report.model import ParityReport
from vlparity.runtime.ort import OrtOptions, parse_provider_options
from vlparity.runtime.vitisai import DEFAULT_MAX_NPU_FALLBACK
from vlparity.safe_paths import check_writable_dir
from vlparity.session import ParitySession, RunSettings

log = logging.getLogger(__name__)
EXIT_PASS, EXIT_PARITY_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INTERNAL_ERROR = EXIT_USAGE  # a crash, like bad input, means "no verdict": CI must never read it as one
QUANTIZED = {"split": "awq", "onnx": "awq+onnx"}  # --quantize: the same path with the AWQ int4 LM
Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # a typed error like every other bad usage: main() exits 2 with it
        self.print_usage(sys.stderr)
        raise UsageError(f"{message} (see {self.prog} --help)")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    examples: tuple[str, ...]
    handler: Handler
    options: tuple[str, ...]  # keys of OPTION_SETS: the judging modes share JUDGE_OPTIONS
    paths: tuple[str, ...] = ()


def settings_from_args(args: argparse.Namespace, paths: tuple[str, ...]) -> RunSettings:
    cache_dir = getattr(args, "cache_dir", None) or args.output_dir
    check_writable_dir(cache_dir, "--cache-dir" if getattr(args, "cache_dir", None) else "--output-dir")
    ort = OrtOptions(
        ep=getattr(args, "ep", "cpu"),
        provider_options=parse_provider_options(getattr(args, "ep_option", [])),
        allow_fallback=getattr(args, "allow_ep_fallback", False),
        graph_optimization=getattr(args, "ort_optimization", "all"),
        max_npu_fallback=getattr(args, "max_npu_fallback", DEFAULT_MAX_NPU_FALLBACK),
    )
    return RunSettings(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        paths=paths,
        max_new_tokens=getattr(args, "max_new_tokens", 16),
        cache_dir=cache_dir,
        ort=ort,
        device_map=args.device_map,
        trust_remote_code=args.trust_remote_code,
        static_shape=getattr(args, "static_shape", None),
        qdq_config=getattr(args, "qdq_config", DEFAULT_QDQ_CONFIG),
        qdq_exclude=parse_qdq_exclude(getattr(args, "qdq_exclude", [])),
    )


def samples_from_args(images: list[str], prompt: str | None) -> list[Sample]:
    """Samples for ``--image``/``--prompt``, every image opened now so a bad file fails before any model work."""
    samples = samples_from_specs(images, prompt)
    for sample in samples:
        sample.validate()
    return samples


def artefacts_from_args(args: argparse.Namespace) -> ExternalArtefacts:
    return ExternalArtefacts(onnx_vision=args.onnx_vision, awq_model=args.awq_model, split_dir=args.split_dir)


def path_names_from_args(args: argparse.Namespace) -> list[str]:
    """The paths a judging command runs: its own (``run``: ``--paths``), AWQ variants under ``--quantize``, plus what
    the given external artefacts need."""
    spec = COMMANDS[args.command].paths or args.paths or ("original,split,onnx" if args.quantize else "all")
    names = parse_path_names(spec)
    if args.quantize:
        names = parse_path_names([QUANTIZED.get(name, name) for name in names])
    return judged_paths(artefacts_from_args(args), names)


def report_targets(args: argparse.Namespace) -> dict[str, Path]:
    """``--report-*`` option → file, suffixes and folders checked before any work (a typo should not cost a whole
    run)."""
    targets = {}
    for dest, suffixes in REPORT_SUFFIXES.items():
        path, option = getattr(args, dest), f"--{dest.replace('_', '-')}"
        if path is None:
            continue
        if path.suffix.lower() not in suffixes:
            raise UsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}.")
        check_writable_dir(path.parent, f"{option} {path}: its folder")
        targets[option] = path
    return targets


def result(text: str) -> None:
    """Print a result (table, verdict line, answers, artefact paths) on the real stdout: third-party code's own
    printing is routed to stderr while a command runs (``_routed_output``)."""
    print(text, file=_RESULTS.stream, flush=True)


@dataclass
class _ResultStream:
    stream: TextIO = field(default_factory=lambda: sys.stdout)


_RESULTS = _ResultStream()
# Libraries whose warnings (torch's pytree notes, transformers' and gptqmodel's load messages) --quiet silences.
QUIET_LIBRARY_LOGGERS = ("torch", "transformers", "gptqmodel", "accelerate", "onnxscript", "onnx_ir")


@contextmanager
def _routed_output(args: argparse.Namespace) -> Iterator[None]:
    """For one command: vlparity's own logger on stderr (third-party loggers keep their names, levels and handlers:
    nothing is relabelled ``vlparity:``), stdout reserved for ``result`` (gptqmodel's import banner, exporter and
    quantizer prints go to stderr, so ``--quiet`` leaves exactly the verdict line on stdout). ``--quiet`` also
    silences Python warnings and the warnings of ``QUIET_LIBRARY_LOGGERS``. Everything is restored afterwards (the
    CLI also runs in-process, e.g. in tests)."""
    logger = logging.getLogger("vlparity")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vlparity: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else getattr(logging, args.log_level))
    logger.propagate = False
    _RESULTS.stream = sys.stdout
    silenced = {name: logging.getLogger(name).level for name in QUIET_LIBRARY_LOGGERS} if args.quiet else {}
    for name in silenced:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(sys.stderr):
            if args.quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        for name, level in silenced.items():
            logging.getLogger(name).setLevel(level)


def write_reports(report: ParityReport, targets: dict[str, Path]) -> None:
    """Write each report file and say where (on stderr: stdout holds the result). One that turns out unwritable only
    now (disk full, a folder in its place) is an output error (exit 2), never a parity failure (exit 1)."""
    from vlparity.report import write_report

    for option, target in targets.items():
        try:
            log.info("report written: %s", write_report(report, target))
        except OSError as exc:
            raise OutputNotWritableError(
                f"{option} {target}: could not be written ({exc.strerror or exc}). The result printed above stands; "
                "choose a writable file path and run again."
            ) from exc


def _check_max_new_tokens(args: argparse.Namespace) -> None:
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens {args.max_new_tokens}: must be at least 1.")


def eval_set_from_args(args: argparse.Namespace) -> EvalSet | None:
    """``--eval-set``, loaded (every image opened) before any model work: a bad line should not cost a whole run."""
    return load_eval_set(args.eval_set) if getattr(args, "eval_set", None) else None


def check_exclusion_search(args: argparse.Namespace, session: ParitySession) -> None:
    """``--suggest-exclusions`` needs onnx-qdq among the paths and a positive trial budget: refused before any work."""
    if not getattr(args, "suggest_exclusions", False):
        return
    if "onnx-qdq" not in session.candidates:
        raise UsageError("--suggest-exclusions searches onnx-qdq's quantization: add onnx-qdq to --paths.")
    if args.max_exclusion_trials < 1:
        raise UsageError(f"--max-exclusion-trials {args.max_exclusion_trials}: must be at least 1.")


def suggest_exclusions_for(report: ParityReport, session: ParitySession, samples: list[Sample], trials: int) -> None:
    """Print (and record in the report's onnx-qdq details) the exclusion list that restores onnx-qdq's vision-side
    gate, when that gate failed; the run's verdict is left as it is."""
    from vlparity.exclusion_search import PATH, suggest_exclusions

    if all(c.passed for c in report.paths[PATH].checks if c.check in ("vision", "tensors")):
        result(f"{PATH}: its vision gate and per-tensor table pass: no node needs to be kept out of quantization")
        return
    with progress.stage("searching onnx-qdq nodes to keep in float (--suggest-exclusions)"):
        suggestion = suggest_exclusions(session, samples, trials)
    for line in suggestion.lines():
        result(line)
    report.paths[PATH].details["suggested_exclusions"] = list(suggestion.nodes) if suggestion.nodes else None


def command_judge(args: argparse.Namespace) -> int:
    """split, run-onnx, run-awq, run: run the paths, judge them against original, print the table."""
    from vlparity.report.table import render_table

    _check_max_new_tokens(args)
    targets = report_targets(args)
    names = path_names_from_args(args)
    samples = samples_from_args(args.image, args.prompt)
    eval_set = eval_set_from_args(args)
    session = ParitySession(settings_from_args(args, tuple(names)))
    for runner in external_runners(session.context, artefacts_from_args(args), session.path_names):
        session.use_runner(runner)
    check_exclusion_search(args, session)
    report = session.run(samples, progress=not args.quiet, eval_set=eval_set)
    result(render_table(report).splitlines()[-1] if args.quiet else render_table(report))
    if getattr(args, "suggest_exclusions", False):
        suggest_exclusions_for(report, session, samples, args.max_exclusion_trials)
    if args.command == "split" and not args.quiet:
        result(f"split: {session.runner('split').artefact_dir}")
    write_reports(report, targets)  # after the table: a report that cannot be written does not hide the result
    return EXIT_PASS if report.passed else EXIT_PARITY_FAILURE


def command_original(args: argparse.Namespace) -> int:
    """Only the reference model: its answers, nothing judged."""
    _check_max_new_tokens(args)
    if args.quantize:
        raise UsageError("--quantize: original runs only the reference model; use run-awq to judge the AWQ model.")
    targets = report_targets(args)
    path_names_from_args(args)  # refuses --onnx-vision & co., which original would ignore
    samples = samples_from_args(args.image, args.prompt)
    eval_set = eval_set_from_args(args)
    session = ParitySession(settings_from_args(args, (REFERENCE_PATH,)))
    answers = [
        (sample.sample_id, session.decode(session.generation(REFERENCE_PATH, sample).tokens))
        for sample in progress.bar(samples, "original")
    ]
    for sample_id, answer in answers:
        result(f"{sample_id}: {answer!r}")
    if eval_set is not None:  # nothing to judge against: the reference's own accuracy
        from vlparity.parity.accuracy import accuracy, is_correct

        predictions, _ = session.eval_answers(REFERENCE_PATH, eval_set, progress=not args.quiet)
        correct = [is_correct(p, item.answer) for p, item in zip(predictions, eval_set.items, strict=True)]
        result(
            f"eval set {eval_set.spec}: {REFERENCE_PATH} accuracy {accuracy(correct):.1%} on {len(correct)} questions"
        )
    write_reports(session.report(), targets)
    return EXIT_PASS


def command_export_onnx(args: argparse.Namespace) -> int:
    from vlparity.export.onnx_vision import ExportSettings
    from vlparity.paths.onnx import build_onnx_vision

    session = ParitySession(settings_from_args(args, (REFERENCE_PATH,)))
    for precision in args.precision or ["fp32"]:
        settings = ExportSettings(
            precision, static_shape=args.static_shape, qdq_config=args.qdq_config,
            qdq_exclude=session.settings.qdq_exclude,
        )  # fmt: skip
        directory = build_onnx_vision(session.context, settings)
        result(f"{precision}: {directory / 'vision.onnx'}")
    return EXIT_PASS


def command_quantize_awq(args: argparse.Namespace) -> int:
    import dataclasses

    from vlparity.paths.awq import build_awq
    from vlparity.quantize.awq import AwqSettings

    settings = AwqSettings(group_size=args.group_size)
    if args.calib_file is not None:
        settings = dataclasses.replace(settings, calibration_file=args.calib_file)
    session = ParitySession(settings_from_args(args, (REFERENCE_PATH,)))
    result(str(build_awq(session.context, settings)))
    return EXIT_PASS


def command_bundle(args: argparse.Namespace) -> int:
    from vlparity.bundle import build_bundle

    if args.output_dir is None:
        raise UsageError("bundle: pass --output-dir DIR, a new or empty directory to write the bundle into.")
    check_writable_dir(args.output_dir, "--output-dir")
    session = ParitySession(settings_from_args(args, (REFERENCE_PATH,)))
    result(str(build_bundle(session.context, args.output_dir, quantize=args.quantize)))
    return EXIT_PASS


COMMANDS = {
    command.name: command
    for command in (
        Command(
            "original",
            "run only the reference model and print its answers (nothing judged)",
            (
                "vlparity original --image cat.jpg --prompt 'Describe it.'",
                "vlparity original --model fixtures/qwen2_vl --image 'photos/*.jpg' --max-tokens 32",
            ),
            command_original,
            JUDGE_OPTIONS,
            paths=(REFERENCE_PATH,),
        ),
        Command(
            "split",
            "save vision and LM apart under --output-dir, reload them apart, judge against original",
            (
                "vlparity split --output-dir out/cache   # writes out/cache/split/<hash>/ and prints it",
                "vlparity split --split-dir my_split/    # judge a split made elsewhere (vision/ + language/)",
            ),
            command_judge,
            JUDGE_OPTIONS,
            paths=("original", "split"),
        ),
        Command(
            "export-onnx",
            "export the vision encoder to ONNX (validated, cached by content hash), print where it is",
            (
                "vlparity export-onnx --model fixtures/qwen2_vl --precision fp32 --precision int8",
                "vlparity export-onnx --static-shape 448x448   # fixed shape, opset 17: for the Ryzen AI NPU",
                "vlparity export-onnx --precision qdq --qdq-exclude @float-nodes.txt   # these nodes stay in float",
            ),
            command_export_onnx,
            EXPORT_OPTIONS,
        ),
        Command(
            "run-onnx",
            "ONNX Runtime vision encoder + split LM, judged against original",
            (
                "vlparity run-onnx --device cuda --ep cuda --image images/",
                "vlparity run-onnx --onnx-vision olive/vision.onnx   # judge an export made elsewhere",
            ),
            command_judge,
            JUDGE_OPTIONS,
            paths=("original", "onnx"),
        ),
        Command(
            "quantize-awq",
            "quantize the LM to AWQ int4 (AutoAWQ; cached by content hash), print where it is",
            ("vlparity quantize-awq --model fixtures/qwen2_vl --group-size 64",),
            command_quantize_awq,
            BUILD_OPTIONS,
        ),
        Command(
            "run-awq",
            "AWQ int4 LM (torch vision), judged against original",
            (
                "vlparity run-awq --image 'images/*.png'",
                "vlparity run-awq --awq-model hub-awq/ --onnx-vision olive/vision.onnx   # also judges awq+onnx",
            ),
            command_judge,
            JUDGE_OPTIONS,
            paths=("original", "awq"),
        ),
        Command(
            "bundle",
            "write a standalone deployment bundle (ONNX vision half + LM half, each with its script) to --output-dir",
            (
                "vlparity bundle --output-dir out/bundle",
                "vlparity bundle --model fixtures/qwen2_vl --quantize --output-dir out/bundle-awq --cache-dir ci-cache",
            ),
            command_bundle,
            ("model", "quantize"),
        ),
        Command(
            "run",
            "run any set of paths, judge them against original, print the parity table",
            (
                "vlparity run --paths all --report-json out/report.json --report-html out/report.html",
                "vlparity run --model Qwen/Qwen2.5-VL-3B-Instruct --device cuda --ep cuda --image cat.jpg",
                "vlparity run --image a.png,b.png --prompt 'Compare the two images.'   # one prompt, two images",
                "vlparity run --quantize   # original, awq, awq+onnx",
                "vlparity run --paths original,onnx --static-shape 448x448   # all images at 448x448, fixed-shape ONNX",
                "vlparity run --paths original,onnx-qdq --qdq-exclude node_linear_3,node_linear_4   # kept in float",
            ),
            command_judge,
            JUDGE_OPTIONS,
        ),
    )
}


def _epilog(lines: list[str] | tuple[str, ...]) -> str:
    return (
        "examples:\n"
        + "\n".join(f"  {line}" for line in lines)
        + "\n\nexit codes: 0 pass, 1 parity failure, 2 usage, input or internal error (no verdict), 130 interrupted"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vlparity",
        description="Prove that a split / exported / quantized vision-language model still behaves like the original.",
        epilog=_epilog([command.examples[0] for command in COMMANDS.values()]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vlparity {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for command in COMMANDS.values():
        subparser = subcommands.add_parser(
            command.name,
            parents=[OPTION_SETS[key]() for key in command.options],  # fresh: argparse shares parents' actions
            help=command.help,
            description=command.help,
            epilog=_epilog(command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if command.name in EXTRA_OPTIONS:
            EXTRA_OPTIONS[command.name](subparser)
        subparser.set_defaults(handler=command.handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:  # argparse's own errors (unknown option, invalid choice): the usage line is printed
        if "--debug" in argv:
            raise
        print(f"vlparity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress.configure(quiet=args.quiet, force=args.progress)
    if args.log_level != "DEBUG":
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        with _routed_output(args):
            return args.handler(args)
    except VlparityError as exc:
        if args.debug:
            raise
        print(f"vlparity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        where = "; ".join(getattr(exc, "__notes__", [])) or "nothing partial is left behind"
        print(f"vlparity: interrupted: {where}. Run the command again to finish.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: never exit 1, which would read as a parity failure
        if args.debug:
            raise
        traceback.print_exc()
        print(
            f"vlparity: internal error: {type(exc).__name__}: {exc}. This is a bug in vlparity (exit "
            f"{EXIT_INTERNAL_ERROR}, not a parity verdict); please report it with the traceback above.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
