"""A live count of what a running QEMU's trace pins, read as the log grows (``qtrace record``).

Only new bytes are read each time, and only the three FlatView events are looked at: the
roots pinned now, the views pinning them, and how many of those are RCU-pending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FLATVIEW_LINE = re.compile(
    rb"(flatview_new|flatview_destroy_rcu|flatview_destroy) (0x[0-9a-f]+) "
    rb"\(root (0x[0-9a-f]+|\(nil\))\)"
)


@dataclass
class LiveCounts:
    """Follows a log backend trace as it grows: views pinning a root now, by phase."""

    path: Path
    offset: int = 0
    partial: bytes = b""
    pending: dict[int, bool] = field(default_factory=dict)  # view -> RCU-pending
    roots: dict[int, int] = field(default_factory=dict)  # view -> root
    events: int = 0

    def update(self) -> None:
        """Read what the trace gained since the last call."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        # A live display over what one second of QEMU traced (thousands of lines at most):
        # a plain loop over those lines is simplest; the analysis proper runs when QEMU exits.
        for line in lines:
            match = FLATVIEW_LINE.search(line)
            if match is None:
                continue
            self.events += 1
            event, view = match[1], int(match[2], 16)
            root = 0 if match[3] == b"(nil)" else int(match[3], 16)
            if event == b"flatview_new":
                self.roots[view], self.pending[view] = root, False
            elif event == b"flatview_destroy_rcu" and view in self.roots:
                self.pending[view] = True
            elif event == b"flatview_destroy":
                self.roots.pop(view, None)
                self.pending.pop(view, None)

    def summary(self) -> str:
        """``11 roots, 34 views pin them (5 RCU-pending), 1812 events``."""
        pinning = [view for view, root in self.roots.items() if root != 0]
        roots = len({self.roots[view] for view in pinning})
        pending = sum(1 for view in pinning if self.pending[view])
        return (
            f"{roots} roots, {len(pinning)} views pin them ({pending} RCU-pending), "
            f"{self.events} events"
        )
