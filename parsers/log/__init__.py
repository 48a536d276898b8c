"""Read the text of QEMU traces: the ``log`` backend and the other line forms of its events.

One module per job: ``dialects`` (the table of line forms), ``lines`` (encodings and line
endings), ``classify`` (which lines are trace lines; the bare-line rule), ``fields`` (cutting
a line into columns), ``damage`` (what could not be read) and ``reader`` (the one pass).
"""

from __future__ import annotations

from qtrace.parsers.log.reader import parse

__all__ = ["parse"]
