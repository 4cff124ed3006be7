"""One report model (``model.py``) and its renderings: terminal table, JSON, Markdown and self-contained HTML.

``write_report`` is the one way the CLI and the pytest plugin write a report file: the suffix picks the rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vlparity.errors import UsageError
from vlparity.report.files import atomic_write_text
from vlparity.report.model import ParityReport


def _renderers() -> dict[str, Callable[[ParityReport], str]]:
    from vlparity.report.html import render_html
    from vlparity.report.json_report import render_json
    from vlparity.report.markdown import render_markdown

    return {".json": render_json, ".md": render_markdown, ".html": render_html, ".htm": render_html}


REPORT_SUFFIXES = (".json", ".md", ".html", ".htm")


def write_report(report: ParityReport, path: Path) -> Path:
    """Render ``report`` as the suffix of ``path`` says (.json, .md, .html/.htm) and write it atomically."""
    path = Path(path)
    renderer = _renderers().get(path.suffix.lower())
    if renderer is None:
        raise UsageError(
            f"report file {path}: unknown suffix {path.suffix or '(none)'!r}; use one of {', '.join(REPORT_SUFFIXES)}."
        )
    return atomic_write_text(path, renderer(report))
