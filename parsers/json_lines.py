"""Tell the JSON-lines containers apart by the keys of their first object.

``journalctl -o json`` (and ``-o json-seq``) prints one journal entry per line, each opening
with ``__CURSOR`` and ``__REALTIME_TIMESTAMP``; meson's ``testlog.json`` holds one test per
line, with ``name``, ``stdout``, ``result`` and ``command``. Anything else is no container.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

JOURNALD = "journald"
TESTLOG = "testlog"
HEAD_BYTES = 1 << 20  # a first line longer than this is judged by the keys it opens with
RECORD_SEPARATOR = b"\x1e"  # json-seq (RFC 7464) puts one before every object
JOURNAL_KEYS = frozenset({"__CURSOR", "__REALTIME_TIMESTAMP", "_PID", "_BOOT_ID"})
TESTLOG_KEYS = frozenset({"stdout", "stderr", "result", "returncode", "command"})
# A key at the top of an object: a quote not escaped (a value's quotes are), a name, a colon.
_KEY = re.compile(rb'(?:^|[{,])\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*:')


def _first_line(path: Path) -> bytes | None:
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    for line in head.split(b"\n"):
        stripped = line.lstrip(b" \t\r" + RECORD_SEPARATOR).rstrip()
        if stripped:
            return stripped if stripped.startswith(b"{") else None
    return None


def _keys(line: bytes) -> set[str]:
    try:
        entry = json.loads(line)
    except ValueError:  # cut by HEAD_BYTES, or damaged: the keys that open it still tell
        return {m.decode() for m in _KEY.findall(line[:65536])}
    return set(entry) if isinstance(entry, dict) else set()


def sniff_container(path: Path) -> str | None:
    """``"journald"``, ``"testlog"`` or None, from the keys of the file's first JSON object.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "testlog.json"
    ...     _ = path.write_text('{"name": "boot", "stdout": "", "result": "OK"}')
    ...     sniff_container(path), sniff_container(Path("samples/pc-boot-ts.log"))
    ('testlog', None)
    """
    line = _first_line(path)
    if line is None:
        return None
    keys = _keys(line)
    if "MESSAGE" in keys and keys & JOURNAL_KEYS:
        return JOURNALD
    if "name" in keys and keys & TESTLOG_KEYS:
        return TESTLOG
    return None
