"""Read an LTTng trace directory (CTF) of QEMU's ``ust`` backend through ``bt2``.

``bt2`` is babeltrace2's Python binding (Debian: ``python3-bt2``; a virtual environment sees
it with ``--system-site-packages``). It is imported only when a trace directory is read,
and without it the directory is refused with the way out: install it, or print the trace
as text with ``babeltrace2 DIR > trace.txt`` and read that.

QEMU's events are ``qemu:<name>`` with their arguments as payload fields (``view`` and
``root`` for the FlatView events, NULL as 0). Other providers' events are skipped and
counted. ``ts_ns`` is the event's clock snapshot in ns from the clock's origin (the Unix
epoch for LTTng's clocks); ``pid``/``tid`` come from the ``vpid``/``vtid`` contexts when the
session added them (``lttng add-context -u -t vpid -t vtid``). ``line`` is the event's
position, 1-based, in babeltrace2's own order: the line ``babeltrace2 DIR`` prints it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from qtrace.errors import InputError
from qtrace.events import FLATVIEW_EVENTS, EventSelection, ParsedInput, conform

PROVIDER = "qemu:"
MAX_DEPTH = 4  # how deep below the directory a session's metadata files are looked for


def is_ctf_dir(path: Path) -> bool:
    """True when ``path`` is a directory holding a CTF trace (a ``metadata`` file).

    Examples
    --------
    >>> is_ctf_dir(Path("samples")), is_ctf_dir(Path("samples/pc-boot-ts.log"))
    (False, False)
    """
    if not path.is_dir():
        return False
    patterns = ("/".join(["*"] * depth + ["metadata"]) for depth in range(MAX_DEPTH + 1))
    return any(next(path.glob(pattern), None) is not None for pattern in patterns)


def _context(event: Any, key: str) -> int | None:
    for scope in (event.common_context_field, event.specific_context_field):
        if scope is not None and key in scope:
            return int(scope[key])
    return None


def parse(path: Path, name: str, selection: EventSelection) -> ParsedInput:
    """Read a CTF trace directory into the events table.

    Raises
    ------
    InputError
        Without the ``bt2`` bindings, when the trace cannot be read at all, or when it holds
        no ``qemu:*`` event. (tests/test_lttng.py reads a real LTTng trace.)
    """
    try:
        import bt2
    except ImportError:
        raise InputError(
            f"{name}: an LTTng (CTF) trace directory; reading it needs babeltrace2's Python "
            "bindings (Debian: python3-bt2), or print it as text: babeltrace2 DIR > trace.txt"
        ) from None
    columns: dict[str, list[Any]] = {
        key: [] for key in ("ts_ns", "pid", "tid", "event", "view", "root", "args", "line")
    }
    skipped = 0
    position = 0
    warnings: list[str] = []
    try:
        messages = bt2.TraceCollectionMessageIterator(str(path))
        # bt2 hands over one event object at a time: no column-wise access exists.
        for message in messages:
            if type(message) is not bt2._EventMessageConst:
                continue
            position += 1
            event = message.event
            full = str(event.name)
            if not full.startswith(PROVIDER):
                skipped += 1
                continue
            event_name = full[len(PROVIDER) :]
            if not selection.matches(event_name):
                continue
            payload = event.payload_field
            flatview = event_name in FLATVIEW_EVENTS and "view" in payload and "root" in payload
            columns["ts_ns"].append(message.default_clock_snapshot.ns_from_origin)
            columns["pid"].append(_context(event, "vpid"))
            columns["tid"].append(_context(event, "vtid"))
            columns["event"].append(event_name)
            columns["view"].append(int(payload["view"]) if flatview else None)
            columns["root"].append(int(payload["root"]) if flatview else None)
            columns["args"].append(
                None if flatview else ", ".join(f"{k}={payload[k]}" for k in payload)
            )
            columns["line"].append(position)
    except (bt2._Error, RuntimeError) as exc:  # damaged or cut: what was read before stands
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if position == 0:
            raise InputError(f"{name}: not a readable CTF trace ({reason})") from None
        warnings.append(
            f"{name}: CTF trace damaged after {position} events ({reason}); read up to there"
        )
    if not columns["event"]:
        raise InputError(f"{name}: an LTTng trace with no QEMU (qemu:*) events")
    events = conform(
        pl.DataFrame(columns, schema_overrides={"view": pl.UInt64, "root": pl.UInt64})
        .with_row_index("seq")
        .with_columns(source=pl.lit(name))
    )
    return ParsedInput(
        events=events,
        format="ctf",
        dialect="lttng-ust",
        clock="wall-ns",
        lines_skipped=skipped,
        warnings=warnings,
    )


__all__ = ["is_ctf_dir", "parse"]
