"""The real QEMU 10 trace with ``memory_region_finalize`` lines inserted: both shapes of the
seed's hazard, for the names tests and the dashboard check in Chromium."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from qtrace import analyze, read_trace

ALIAS_IO = 0x563E2D2198B0  # pci_bridge_io [alias of 0x563e2d219440 pci_bridge_io]
ALIAS_PREF = 0x563E2D219690  # pci_bridge_pref_mem [alias of 0x563e2d219330 pci_bridge_pci]


def with_finalizes(log: Path, out: Path, inserts: dict[int, str]) -> Path:
    """A copy of ``log`` with a ``memory_region_finalize`` line after each given line number,
    stamped like its neighbour, as a QEMU build carrying the proposed event prints it."""
    lines = log.read_text().splitlines(keepends=True)
    result = []
    for number, line in enumerate(lines, start=1):
        result.append(line)
        if number in inserts:
            stamp = line.split(":", 1)[0]  # TID@SEC.USEC
            result.append(f"{stamp}:memory_region_finalize {inserts[number]}\n")
    out.write_text("".join(result))
    return out


def line_where(log: Path, root: int, condition: pl.Expr) -> int:
    """The trace line of the first FlatView event after which ``root``'s levels meet
    ``condition`` (over the concurrency table's ``live`` and ``pending``)."""
    trace = read_trace(log)
    steps = analyze(trace).concurrency.filter((pl.col("root") == root) & condition)
    seq = steps["seq"].min()
    return int(trace.events.filter(pl.col("seq") == seq)["line"].item())


def hazard_log(log: Path, out: Path) -> Path:
    """``log`` with the pci_bridge_io window alias finalized while only RCU-pending views pin
    it (the deferred unref at flatview_destroy would hit re-initialised storage), and the
    pref_mem window alias while its live view pins it (Akihiko Odaki's assert)."""
    pending_line = line_where(log, ALIAS_IO, (pl.col("live") == 0) & (pl.col("pending") > 0))
    live_line = line_where(log, ALIAS_PREF, pl.col("live") > 0)
    return with_finalizes(
        log,
        out,
        {
            pending_line: f"mr {ALIAS_IO:#x}, pci_bridge_io",
            live_line: f"mr {ALIAS_PREF:#x}, pci_bridge_pref_mem",
        },
    )
