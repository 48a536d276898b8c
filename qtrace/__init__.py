"""qtrace: analyze QEMU FlatView trace events.

The library API is what the ``qtrace`` command uses; a notebook gets the same polars tables.

>>> import qtrace
>>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
>>> analysis = qtrace.analyze(trace)
>>> analysis.views.height, analysis.status_counts["current"]
(257, 3)
>>> found = qtrace.Findings.of(analysis, qtrace.FailPolicy.parse("leaked"))
>>> found.line, found.exit_code
('leaks: 0, anomalies: 0', 0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module that defines it. They load on first use: ``import qtrace``
# (and the command line, which imports this package first) stays quick, and a command loads
# only what it runs (polars for any table, plotly only for a dashboard).
_HOMES = {
    "ANOMALY_KINDS": "qtrace.model",
    "Analysis": "qtrace.model",
    "EVENTS_SCHEMA": "qtrace.events",
    "EventSelection": "qtrace.events",
    "FLATVIEW_EVENTS": "qtrace.events",
    "FailPolicy": "qtrace.findings",
    "Findings": "qtrace.findings",
    "InputError": "qtrace.errors",
    "MODEL_EVENTS": "qtrace.events",
    "Names": "qtrace.names",
    "QtraceError": "qtrace.errors",
    "Trace": "qtrace.events",
    "UsageError": "qtrace.errors",
    "analyze": "qtrace.model",
    "read_events": "qtrace.ingest",
    "read_names": "qtrace.names",
    "read_trace": "qtrace.ingest",
    "render_json": "qtrace.report",
    "render_markdown": "qtrace.report",
    "render_text": "qtrace.report",
    "to_json": "qtrace.report",
    "write_dashboard": "qtrace.dashboards",
    "write_events": "qtrace.export",
    "write_perfetto": "qtrace.perfetto",
}

if TYPE_CHECKING:
    from qtrace.dashboards import write_dashboard
    from qtrace.errors import InputError, QtraceError, UsageError
    from qtrace.events import (
        EVENTS_SCHEMA,
        FLATVIEW_EVENTS,
        MODEL_EVENTS,
        EventSelection,
        Trace,
    )
    from qtrace.export import write_events
    from qtrace.findings import FailPolicy, Findings
    from qtrace.ingest import read_events, read_trace
    from qtrace.model import ANOMALY_KINDS, Analysis, analyze
    from qtrace.names import Names, read_names
    from qtrace.perfetto import write_perfetto
    from qtrace.report import render_json, render_markdown, render_text, to_json


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'qtrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found once; later reads are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "ANOMALY_KINDS",
    "EVENTS_SCHEMA",
    "FLATVIEW_EVENTS",
    "MODEL_EVENTS",
    "Analysis",
    "EventSelection",
    "FailPolicy",
    "Findings",
    "InputError",
    "Names",
    "QtraceError",
    "Trace",
    "UsageError",
    "__version__",
    "analyze",
    "read_events",
    "read_names",
    "read_trace",
    "render_json",
    "render_markdown",
    "render_text",
    "to_json",
    "write_dashboard",
    "write_events",
    "write_perfetto",
]
