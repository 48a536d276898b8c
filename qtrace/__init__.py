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

__version__ = "0.1.0"

from typing import Any

from qtrace.errors import InputError, QtraceError, UsageError
from qtrace.events import EVENTS_SCHEMA, FLATVIEW_EVENTS, MODEL_EVENTS, EventSelection, Trace
from qtrace.export import write_events
from qtrace.findings import FailPolicy, Findings
from qtrace.ingest import read_events, read_trace
from qtrace.model import ANOMALY_KINDS, Analysis, analyze
from qtrace.names import Names, read_names
from qtrace.perfetto import write_perfetto
from qtrace.report import render_json, render_markdown, render_text, to_json


def __getattr__(name: str) -> Any:
    # The dashboards bring plotly: loaded when first used, so the command line and a notebook
    # that never draws start fast.
    if name == "write_dashboard":
        from qtrace.dashboards import write_dashboard

        return write_dashboard
    raise AttributeError(f"module 'qtrace' has no attribute {name!r}")


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
