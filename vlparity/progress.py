"""Progress bars on stderr for the long steps (export, quantization, generation over many samples).

Bars are for people watching a terminal: they are off when stderr is not a TTY (CI logs stay readable) unless forced
(``--progress``), and always off under ``--quiet``. The CLI sets this once with ``configure``; library code only asks
for ``bar`` or ``stage`` and never decides on its own.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)
T = TypeVar("T")
REFRESH_SECONDS = 0.5
_settings = {"quiet": False, "force": False}


def configure(*, quiet: bool = False, force: bool = False) -> None:
    """Called by the CLI: ``quiet`` turns every bar off, ``force`` shows bars even when stderr is not a TTY."""
    _settings.update(quiet=quiet, force=force)


def enabled() -> bool:
    if _settings["quiet"]:
        return False
    return _settings["force"] or sys.stderr.isatty()


def bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (a plain iteration when bars are off)."""
    if not enabled():
        yield from items
        return
    with logging_redirect_tqdm(), tqdm(items, desc=description, total=total, file=sys.stderr, unit="sample") as shown:
        yield from shown


@contextmanager
def stage(description: str) -> Iterator[None]:
    """A spinner with elapsed time around an opaque library call (ONNX export, AWQ calibration, …). What the library
    prints meanwhile (the exporter's notes, the quantizer's own bars: hundreds of lines on a cold run) goes to
    vlparity's log at DEBUG (``--log-level DEBUG`` shows it), or at WARNING when the call fails."""
    if not enabled():
        with library_output_logged(description):
            yield
        return
    spinner = tqdm(total=None, desc=description, bar_format="{desc}: {elapsed}", file=sys.stderr)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(REFRESH_SECONDS):
            spinner.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        with logging_redirect_tqdm(), library_output_logged(description):
            yield
    finally:
        stop.set()
        thread.join()
        spinner.close()


@contextmanager
def library_output_logged(description: str) -> Iterator[None]:
    """Capture what Python code prints to stdout/stderr inside the block and log it line by line (Python-level
    streams only: the spinner and vlparity's log handler hold the real stderr, bound before the block)."""
    captured = io.StringIO()
    failed = False
    try:
        with redirect_stdout(captured), redirect_stderr(captured):
            yield
    except BaseException:
        failed = True
        raise
    finally:
        lines = [line.rstrip() for line in captured.getvalue().replace("\r", "\n").splitlines() if line.strip()]
        if lines:
            level = logging.WARNING if failed else logging.DEBUG
            log.log(level, "%s: %d line(s) of library output:", description, len(lines))
            for line in lines:
                log.log(level, "  %s", line)
