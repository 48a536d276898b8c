"""Interactive, offline Plotly dashboards of FlatView and root lifetimes.

>>> import tempfile
>>> from pathlib import Path
>>> from qtrace.dashboards import write_dashboard
>>> trace = qtrace.read_trace("samples/pc-boot-ts.log")
>>> page = write_dashboard(qtrace.analyze(trace), Path(tempfile.mkdtemp()) / "report.html")
>>> page.name, page.stat().st_size > 1_000_000  # plotly.js is inside
('report.html', True)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import polars as pl
from qtrace.dashboards.inputs import marker_events
from qtrace.dashboards.page import plotly_js, render_page, render_page_parts

from qtrace.errors import InputError, UsageError
from qtrace.findings import Findings
from qtrace.model import Analysis

PLOTLYJS_FILE = "plotly.min.js"
PLOTLYJS_MODES = ("inline", "directory")


def build_dashboard(
    analysis: Analysis,
    *,
    replay: Analysis | None = None,
    markers: pl.DataFrame | None = None,
    title: str | None = None,
    findings: Findings | None = None,
) -> str:
    """The dashboard of ``analysis`` as one self-contained HTML page (plotly.js inside).

    Parameters
    ----------
    analysis
        What ``qtrace.analyze`` returns.
    replay
        The same trace analysed with ``root_release="destroy_rcu"``: drawn as a second
        concurrency line per root.
    markers
        Other trace events (events-table rows) drawn as vertical lines on the timeline.
    title
        Page title; default: the input file names.
    findings
        The verdict the header shows (``qtrace.findings.Findings``; default: computed with
        the default policy).

    Examples
    --------
    >>> html = build_dashboard(qtrace.analyze(qtrace.read_trace("samples/pc-boot-ts.log")))
    >>> html.startswith("<!DOCTYPE html>")
    True
    """
    return render_page(analysis, replay=replay, markers=markers, title=title, findings=findings)


def write_dashboard(
    analysis: Analysis,
    path: str | os.PathLike[str],
    *,
    plotlyjs: Literal["inline", "directory"] = "inline",
    replay: Analysis | None = None,
    markers: pl.DataFrame | None = None,
    title: str | None = None,
    findings: Findings | None = None,
) -> Path:
    """Write the dashboard of ``analysis`` to ``path`` and return the path.

    ``plotlyjs="directory"`` writes (or refreshes) one ``plotly.min.js`` beside the page and
    loads it by a relative URL, so many pages in one folder share it.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> analysis = qtrace.analyze(qtrace.read_trace("samples/pc-boot-ts.log"))
    >>> write_dashboard(analysis, out / "run1.html", plotlyjs="directory").name
    'run1.html'
    >>> (out / "plotly.min.js").is_file()
    True
    """
    if plotlyjs not in PLOTLYJS_MODES:
        raise UsageError(f"unknown plotly.js mode {plotlyjs!r} (choose inline or directory)")
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a directory, not an HTML file to write")
    src = PLOTLYJS_FILE if plotlyjs == "directory" else None
    page = render_page_parts(
        analysis,
        replay=replay,
        markers=markers,
        title=title,
        plotlyjs_src=src,
        findings=findings,
    )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if src is not None:
            _refresh(target.parent / PLOTLYJS_FILE, plotly_js())
        _write_text(target, page)
    except OSError as exc:
        raise InputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    return target


WRITE_CHARS = 1 << 20


def _write_text(path: Path, parts: list[str]) -> None:
    """The page's ``parts`` in UTF-8, a MiB at a time: never joined, never held twice."""
    with path.open("w", encoding="utf-8", newline="") as out:
        for text in parts:
            for start in range(0, len(text), WRITE_CHARS):
                out.write(text[start : start + WRITE_CHARS])


def _refresh(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds exactly it (pages may share the file)."""
    data = text.encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    # A unique temporary name, then an atomic rename: batch jobs may write pages side by side.
    fd, tmp = tempfile.mkstemp(prefix=".plotly-", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


__all__ = [
    "PLOTLYJS_MODES",
    "build_dashboard",
    "marker_events",
    "write_dashboard",
]
