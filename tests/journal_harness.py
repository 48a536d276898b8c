"""Capture Debian's QEMU in a real systemd journal, then export it as ``journalctl`` does.

Runs in a private mount namespace (``unshare -m``, as root) so the machine's own ``/run`` is
never touched: a tmpfs over ``/run/systemd`` and ``/run/log``, a ``systemd-journald`` of its
own (it opens its sockets itself when no systemd hands them over), then:

- each QEMU run's stderr (the ``log`` backend, ``-trace 'flatview_*'``) goes to the journal
  through ``systemd-cat`` and, byte for byte, to a plain log file through ``tee``: the same
  trace in classic log form, to compare with;
- the first run's log is sent again through ``logger`` to journald's syslog socket: one
  ``syslog()`` message per line, the form QEMU's ``syslog`` backend produces (Debian's QEMU
  is built with the ``log`` backend only);
- ``journalctl -o json`` exports it all, with the kernel's messages journald read from
  ``/dev/kmsg`` in between (noise a reader must skip); ``-o short-iso-precise`` and ``-o
  short`` export the same entries as RFC 3339 and classic syslog lines.

Every step is bounded in time; the journald started here is stopped before returning.
Needs systemd (journald, systemd-cat, journalctl), util-linux (unshare, logger) and QEMU.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from qemu_harness import qemu_binary

JOURNALD = Path("/lib/systemd/systemd-journald")
IDENTIFIER = "qemu-system-x86_64"
CAPTURE_TIMEOUT_S = 120


class JournalHarnessError(RuntimeError):
    """A tool is missing, or the capture did not complete (its output is in the message)."""


@dataclass(frozen=True)
class JournalCapture:
    """What one capture left behind."""

    journal_json: Path  # journalctl -o json
    short_iso: Path  # journalctl -o short-iso-precise (RFC 3339 syslog lines)
    short: Path  # journalctl -o short (classic syslog lines)
    logs: tuple[Path, ...]  # each QEMU run's stderr as the log backend wrote it
    started_s: float
    ended_s: float


def _script(out: Path, runs: int, seconds: float, timestamps: bool) -> str:
    qemu = [qemu_binary(), "-accel", "tcg", "-m", "128", "-machine", "pc", "-display", "none"]
    qemu += ["-serial", "none", "-monitor", "none", "-nic", "none", "-trace", "flatview_*"]
    if timestamps:
        qemu += ["-msg", "timestamp=on"]
    steps = [
        "set -eu",
        "mount -t tmpfs tmpfs /run/systemd",
        "mkdir -p /run/log && mount -t tmpfs tmpfs /run/log",
        # Bounded on its own too: if this script is killed, journald still ends.
        f"timeout {CAPTURE_TIMEOUT_S} {JOURNALD} & journald=$!",
        "trap 'kill $journald 2>/dev/null; wait $journald 2>/dev/null || true' EXIT",
        "for i in $(seq 200); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.05; done",
        "[ -S /run/systemd/journal/stdout ] || { echo 'journald opened no socket' >&2; exit 1; }",
    ]
    for index in range(runs):
        log = out / f"run{index}.log"
        # QEMU's stderr to both the journal stream and the file; stdout is dropped. SIGTERM
        # ends the boot (QEMU says so on stderr: one more line that is no trace line).
        inner = f"timeout -s TERM {seconds} {shlex.join(qemu)} 2>&1 >/dev/null | tee {log}"
        steps.append(f"systemd-cat -t {IDENTIFIER} sh -c {shlex.quote(inner)} || true")
    socket = "/run/systemd/journal/dev-log"
    steps.append(f"logger -u {socket} -t {IDENTIFIER} -f {out / 'run0.log'}")
    steps.append("sleep 0.5")  # journald writes what its sockets hold before it is asked
    for fmt, name in (
        ("json", "journal.json"),
        ("short-iso-precise", "short-iso"),
        ("short", "short"),
    ):
        steps.append(f"journalctl --no-pager -o {fmt} > {out / name}")
    return "\n".join(steps) + "\n"


def capture_journal(
    out: Path, *, runs: int = 2, seconds: float = 1.5, timestamps: bool = False
) -> JournalCapture:
    """Capture ``runs`` QEMU boots (each stopped after ``seconds``) in a private journal.

    Examples
    --------
    >>> capture = capture_journal(Path("/tmp/j"))  # doctest: +SKIP
    >>> capture.journal_json.read_text().count('"MESSAGE"') > 1000  # doctest: +SKIP
    True
    """
    for tool in ("unshare", "systemd-cat", "journalctl", "logger"):
        if shutil.which(tool) is None:
            raise JournalHarnessError(f"{tool} not found: install systemd and util-linux")
    if not JOURNALD.exists():
        raise JournalHarnessError(f"{JOURNALD} not found: install Debian's systemd")
    out.mkdir(parents=True, exist_ok=True)
    script = out / "capture.sh"
    script.write_text(_script(out, runs, seconds, timestamps))
    started_s = time.time()
    try:
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", str(script)],
            capture_output=True,
            text=True,
            timeout=CAPTURE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise JournalHarnessError(f"journal capture took over {CAPTURE_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise JournalHarnessError(f"journal capture failed ({done.returncode}): {done.stderr}")
    return JournalCapture(
        journal_json=out / "journal.json",
        short_iso=out / "short-iso",
        short=out / "short",
        logs=tuple(out / f"run{i}.log" for i in range(runs)),
        started_s=started_s,
        ended_s=time.time(),
    )
