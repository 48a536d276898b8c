"""qtrace: analyze QEMU FlatView trace events.

The library API is what the ``qtrace`` command uses; a notebook gets the same polars tables.

>>> import qtrace
>>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")  # doctest: +SKIP
>>> qtrace.analyze(trace).views  # doctest: +SKIP
"""

__version__ = "0.1.0"

# Last: the dashboards import the model and the report.
from qtrace.dashboards import write_dashboard
from qtrace.errors import InputError, QtraceError, UsageError
from qtrace.events import EVENTS_SCHEMA, FLATVIEW_EVENTS, MODEL_EVENTS, EventSelection, Trace
from qtrace.export import write_events
from qtrace.ingest import read_events, read_trace
from qtrace.model import ANOMALY_KINDS, Analysis, analyze
from qtrace.perfetto import write_perfetto
from qtrace.report import render_json, render_markdown, render_text, to_json

__all__ = [
    "ANOMALY_KINDS",
    "EVENTS_SCHEMA",
    "FLATVIEW_EVENTS",
    "MODEL_EVENTS",
    "Analysis",
    "EventSelection",
    "InputError",
    "QtraceError",
    "Trace",
    "UsageError",
    "__version__",
    "analyze",
    "read_events",
    "read_trace",
    "render_json",
    "render_markdown",
    "render_text",
    "to_json",
    "write_dashboard",
    "write_events",
    "write_perfetto",
]
