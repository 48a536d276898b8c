"""qtrace: analyze QEMU FlatView trace events.

The library API is what the ``qtrace`` command uses; a notebook gets the same polars tables.

>>> import qtrace
>>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")  # doctest: +SKIP
>>> qtrace.analyze(trace).views  # doctest: +SKIP
"""

from qtrace.errors import InputError, QtraceError, UsageError
from qtrace.events import EVENTS_SCHEMA, FLATVIEW_EVENTS, EventSelection, Trace
from qtrace.export import write_events
from qtrace.ingest import read_events, read_trace

__version__ = "0.1.0"

__all__ = [
    "EVENTS_SCHEMA",
    "FLATVIEW_EVENTS",
    "EventSelection",
    "InputError",
    "QtraceError",
    "Trace",
    "UsageError",
    "__version__",
    "read_events",
    "read_trace",
    "write_events",
]
