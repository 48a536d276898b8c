"""Names files: ``TIME POINTER NAME [alias of POINTER NAME] [label]`` lines, ``#`` comments.

The format of ``../shared/traces/qemu10-pc-bridges-ts.roots.txt`` and of what ``qtrace names``
writes. TIME is when the name was read, in the trace's clock: wall-clock seconds
(``1795569499.410496``, or an ISO-8601 stamp ``2025-07-21T18:43:28.089797Z``) for log traces,
``CLOCK_MONOTONIC`` seconds for simple-backend traces. A NAME with blanks, quotes or brackets
is written as a JSON string (``"PCI host bridge"``). The label is free text; a label whose
first word is ``gdb`` marks a name read by ``qtrace names`` (source ``gdb``), any other line
is source ``file``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qtrace.errors import InputError

_NAME = r'"(?:[^"\\]|\\.)*"|[^\s"\[\]][^\s\]]*'
LINE = re.compile(
    rf"""^(?P<time>\S+)\s+(?P<root>0[xX][0-9a-fA-F]+)\s+(?P<name>{_NAME})
    (?:\s+\[alias\ of\s+(?P<alias_root>0[xX][0-9a-fA-F]+)\s+(?P<alias_of>{_NAME})\])?
    (?:\s+(?P<label>[^\s\[].*?))?\s*$""",
    re.VERBOSE,
)
SECONDS = re.compile(r"^(?P<whole>\d+)(?:\.(?P<fraction>\d{1,9}))?$")
FORMAT = "TIME POINTER NAME [alias of POINTER NAME] [label]"
# Printable ASCII without blanks, quotes, brackets or '#': written bare; anything else quoted.
BARE = re.compile(r"^[!$-Z\\^-~][!$-Z\\^-~]*$")


@dataclass(frozen=True)
class NameLine:
    """One line of a names file."""

    at_ns: int  # when the name was read, in the trace's clock
    root: int
    name: str
    alias_root: int | None
    alias_of: str | None
    label: str
    line: int


def parse_time_ns(text: str) -> int | None:
    """Seconds (``1795569499.410496``) or an ISO-8601 UTC stamp as integer ns; None if neither.

    Decimal seconds are read exactly (no float rounding).

    Examples
    --------
    >>> parse_time_ns("1795569499.410496")
    1795569499410496000
    >>> parse_time_ns("1970-01-01T00:00:01.5Z")
    1500000000
    """
    match = SECONDS.match(text)
    if match is not None:
        fraction = (match["fraction"] or "").ljust(9, "0")
        return int(match["whole"]) * 1_000_000_000 + int(fraction)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    whole = int(stamp.timestamp())
    return whole * 1_000_000_000 + stamp.microsecond * 1_000


def _name(token: str) -> str:
    return str(json.loads(token)) if token.startswith('"') else token


def parse_names(text: str, path: str) -> list[NameLine]:
    """The lines of a names file; the first line that does not parse raises ``InputError``.

    Examples
    --------
    >>> [n.name for n in parse_names("1.5 0x10 io periodic\\n# comment\\n", "f")]
    ['io']
    """
    lines: list[NameLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = LINE.match(stripped)
        at_ns = None if match is None else parse_time_ns(match["time"])
        if match is None or at_ns is None:
            shown = stripped if len(stripped) <= 80 else stripped[:77] + "..."
            raise InputError(f"{path}:{number}: not a names line ({FORMAT}): {shown!r}")
        try:
            name = _name(match["name"])
            alias_of = None if match["alias_of"] is None else _name(match["alias_of"])
        except ValueError as error:
            raise InputError(f"{path}:{number}: a quoted name does not parse: {error}") from None
        lines.append(
            NameLine(
                at_ns=at_ns,
                root=int(match["root"], 16),
                name=name,
                alias_root=None if match["alias_root"] is None else int(match["alias_root"], 16),
                alias_of=alias_of,
                label=match["label"] or "",
                line=number,
            )
        )
    return lines


def read_names_file(path: str | Path) -> list[NameLine]:
    """Parse the names file at ``path`` (``InputError``: missing, unreadable or malformed)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a names file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read names file: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: names file is not UTF-8 text (byte {error.start})") from None
    return parse_names(text, str(path))


def quote_name(name: str) -> str:
    """``name`` as a names-file token: bare when it can be, else a JSON string.

    Examples
    --------
    >>> quote_name("pci_bridge_io"), quote_name("PCI host bridge")
    ('pci_bridge_io', '"PCI host bridge"')
    """
    return name if BARE.match(name) else json.dumps(name)


def format_line(
    at_ns: int,
    root: int,
    name: str,
    alias_root: int | None = None,
    alias_of: str | None = None,
    label: str = "",
) -> str:
    """One names-file line (time in seconds with microseconds, as QEMU's log prints it).

    Examples
    --------
    >>> format_line(1795569499410496000, 0x2198B0, "pci_bridge_io", 0x219440, "pci_bridge_io")
    '1795569499.410496 0x2198b0 pci_bridge_io [alias of 0x219440 pci_bridge_io]'
    """
    seconds, ns = divmod(at_ns, 1_000_000_000)
    text = f"{seconds}.{ns // 1000:06d} {root:#x} {quote_name(name)}"
    if alias_root is not None:
        text += f" [alias of {alias_root:#x} {quote_name(alias_of or '')}]"
    return text + (f" {label}" if label else "")
