"""The public API is a reviewed surface: exactly these names, each documented."""

from __future__ import annotations

import qtrace

EXPECTED = {
    "ANOMALY_KINDS",
    "Analysis",
    "EVENTS_SCHEMA",
    "FLATVIEW_EVENTS",
    "MODEL_EVENTS",
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
}


def test_all_is_exactly_the_reviewed_surface() -> None:
    assert set(qtrace.__all__) == EXPECTED
    assert len(qtrace.__all__) == len(EXPECTED)  # no name listed twice


def test_every_public_callable_has_a_docstring() -> None:
    for name in qtrace.__all__:
        obj = getattr(qtrace, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), name
