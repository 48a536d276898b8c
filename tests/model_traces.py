"""Hand-written FlatView traces for the lifetime-model tests, one event per line.

    new 1 10        flatview_new view 0x1, root 0x10 (numbers are hex; 'nil' is (nil))
    rcu 1 10        flatview_destroy_rcu
    destroy 1 10    flatview_destroy
    drop 5          a dropped-events record (5 events lost)
    finalize 10     memory_region_finalize of MR 0x10
    unreadable      a qtrace_unreadable row (the reader could not read something here)
    other           any other event (takes a seq, changes nothing)
    new 1 10 @7     any line may end with @PID: the event's process id (else null)

Row i gets seq i and, with a clock, ts_ns = 1000 * i.
"""

from __future__ import annotations

import polars as pl

from qtrace.events import conform

NAMES = {
    "new": "flatview_new",
    "rcu": "flatview_destroy_rcu",
    "destroy": "flatview_destroy",
}


def _pointer(text: str) -> int:
    return 0 if text == "nil" else int(text, 16)


def trace(text: str, *, clock: bool = True, source: str = "t.log") -> pl.DataFrame:
    """An events table from the compact notation above."""
    rows: list[dict[str, object]] = []
    for line in (raw.split("#")[0].strip() for raw in text.strip().splitlines()):
        if not line:
            continue
        word, *args = line.split()
        pid = int(args.pop()[1:]) if args and args[-1].startswith("@") else None
        row: dict[str, object] = {"event": NAMES.get(word, word), "pid": pid}
        if word in NAMES:
            row["view"], row["root"] = _pointer(args[0]), _pointer(args[1])
            row["args"] = f"0x{args[0]} (root 0x{args[1]})"
        elif word == "drop":
            row["event"] = "Dropped_Event"
            row["args"] = f"num_events_dropped=0x{int(args[0]):x}"
        elif word == "finalize":
            row["event"] = "memory_region_finalize"
            row["args"] = f"mr=0x{args[0]} name=pci_bridge_io"
        elif word == "unreadable":
            row["event"] = "qtrace_unreadable"
            row["args"] = "garbled flatview_new line: flatview_new 0xZZZ (root 0x1)"
        rows.append(row)
    frame = pl.DataFrame(
        {
            "seq": list(range(len(rows))),
            "ts_ns": [1000 * i for i in range(len(rows))] if clock else [None] * len(rows),
            "event": [r["event"] for r in rows],
            "view": [r.get("view") for r in rows],
            "root": [r.get("root") for r in rows],
            "pid": [r["pid"] for r in rows],
            "args": [r.get("args") for r in rows],
            "source": [source] * len(rows),
            "line": list(range(1, len(rows) + 1)),
        },
        schema_overrides={"view": pl.UInt64, "root": pl.UInt64, "ts_ns": pl.Int64, "pid": pl.Int32},
    )
    return conform(frame)
