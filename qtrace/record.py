"""``qtrace record -- QEMU ARGS...``: run QEMU with FlatView tracing, then analyze what it did.

QEMU runs with ``-msg timestamp=on -trace flatview_* -trace memory_region_finalize* -D
DIR/qemu-PID/trace.log`` added after its own arguments (a later ``-D`` or ``-msg`` wins in
QEMU, so these do). The recording is named by QEMU's PID: ``/bin/sh`` makes the directory and
then ``exec``s QEMU, which keeps the shell's PID, so the name is known before QEMU starts and
several QEMUs (one qtest binary starts many) never share one. The recorder forwards SIGINT
and SIGTERM to QEMU, stays alive while QEMU runs (QEMU 10.2 may run with
``exit-with-parent``), and exits with QEMU's status (128 + the signal when QEMU died of one).
When QEMU has exited it writes ``report.json`` and ``dashboard.html`` beside the trace.

With ``names``, a gdb resolver (qtrace.names.gdb) names the roots while QEMU runs: once the
first roots appear, every ``every`` seconds, and once more when a signal asks QEMU to stop,
before the signal is passed on.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from qtrace.errors import QtraceError, UsageError
from qtrace.events import MODEL_EVENTS
from qtrace.names.gdb import GDB_TIMEOUT_S, Resolver

TRACE_OPTIONS = (
    "-msg",
    "timestamp=on",
    "-trace",
    "flatview_*",
    # A pattern, not a name: QEMU warns about a missing event name but not about a pattern
    # that matches nothing, and memory_region_finalize is only in some builds (docs/names.md).
    "-trace",
    "memory_region_finalize*",
)
RECORDING_PREFIX = "qemu-"
# "$1" is the output directory, the rest QEMU's argv; exec keeps the shell's PID ($$).
LAUNCH = (
    'dir="$1/' + RECORDING_PREFIX + '$$"; shift; mkdir -p "$dir" || exit 126; '
    'exec "$@" -D "$dir/trace.log"'
)
FORWARDED = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.2
LIVE_EVERY_S = 1.0
FIRST_NAMES_POLL_S = 0.5


@dataclass(frozen=True)
class Recording:
    """One QEMU run: its PID, where its files are, and its exit status (as a shell sees it)."""

    pid: int
    directory: Path
    status: int

    @property
    def trace(self) -> Path:
        return self.directory / "trace.log"

    @property
    def names(self) -> Path:
        return self.directory / "trace.names"

    @property
    def report(self) -> Path:
        return self.directory / "report.json"

    @property
    def dashboard(self) -> Path:
        return self.directory / "dashboard.html"


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell reports it: 128 + N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def recording_dir(out: Path, pid: int) -> Path:
    """Where the recording of QEMU ``pid`` goes under ``out``."""
    return out / f"{RECORDING_PREFIX}{pid}"


@dataclass
class _Names:
    """The gdb resolver thread of one recording (``names=True``)."""

    recording_dir: Path
    pid: int
    every: float
    warn: Callable[[str], None]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    resolver: Resolver | None = None
    failed: bool = False
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="qtrace-names", daemon=True)
        self.thread.start()

    def snap(self) -> None:
        """One snapshot now (the first creates the resolver); errors become one warning."""
        if self.failed:
            return
        with self.lock:
            try:
                self._snap()
            except QtraceError as error:
                self.failed = True
                self.warn(f"names: {error}")

    def _snap(self) -> None:
        if self.resolver is None:
            trace = self.recording_dir / "trace.log"
            if not trace.exists():
                return  # QEMU has not started tracing yet
            out = (self.recording_dir / "trace.names").open("w", encoding="utf-8")
            try:
                self.resolver = Resolver(self.pid, trace, out)
            except QtraceError:
                out.close()
                raise
        self.resolver.snap()

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.snap()
            named = self.resolver is not None and self.resolver.done.snapshots > 0
            self.stop.wait(self.every if named else FIRST_NAMES_POLL_S)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(GDB_TIMEOUT_S + 5)
        if self.resolver is not None:
            self.resolver.writer.out.close()


def run_qemu(
    qemu: Sequence[str],
    out: Path,
    *,
    names: bool = False,
    every: float = 5.0,
    live: Callable[[str], None] | None = None,
    warn: Callable[[str], None] = lambda text: None,
) -> Recording:
    """Run ``qemu`` (its argv) with FlatView tracing into ``out``/qemu-PID; wait for it.

    Forwards SIGINT and SIGTERM to QEMU while it runs (from the main thread). ``live``, when
    given, is called about once a second with a one-line summary of what the trace pins now.

    Examples
    --------
    The status is QEMU's (here a stand-in that exits with 3); the recording is named by its
    PID, since one test binary may start several QEMUs:

    >>> import tempfile
    >>> rec = run_qemu(["sh", "-c", "exit 3"], Path(tempfile.mkdtemp()))
    >>> rec.status, rec.trace.name, rec.trace.parent.name == f"qemu-{rec.pid}"
    (3, 'trace.log', True)
    """
    if not qemu:
        raise UsageError(
            "give the QEMU command line after --: qtrace record -- qemu-system-x86_64 ..."
        )
    out.mkdir(parents=True, exist_ok=True)
    argv = ["/bin/sh", "-c", LAUNCH, "sh", str(out), *qemu, *TRACE_OPTIONS]
    try:
        process = subprocess.Popen(argv)
    except OSError as error:
        raise QtraceError(f"cannot start {qemu[0]}: {error.strerror or error}") from None
    directory = recording_dir(out, process.pid)
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in FORWARDED}
    resolver = _Names(directory, process.pid, every, warn) if names else None
    if resolver is not None:
        resolver.start()
    counts = None
    if live is not None:
        from qtrace.live import LiveCounts

        counts = LiveCounts(directory / "trace.log")
    try:
        shown = 0.0
        while True:
            try:
                returncode = process.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            while received:
                signum = received.pop(0)
                if resolver is not None:
                    resolver.stop.set()
                    resolver.snap()  # the roots as they are before QEMU tears down
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)
            if counts is not None and live is not None and time.monotonic() - shown >= LIVE_EVERY_S:
                counts.update()
                live(f"QEMU {process.pid}: {counts.summary()}")
                shown = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if resolver is not None:
            resolver.close()
    return Recording(process.pid, directory, exit_status(returncode))


def write_outputs(
    recording: Recording,
    *,
    dashboard: bool = True,
    text: IO[str] | None = None,
) -> list[Path]:
    """Analyze the recording; write ``report.json`` (and ``dashboard.html``); print the report.

    The names ``run_qemu(names=True)`` wrote are used. Returns the files written. Raises
    ``QtraceError`` when the trace cannot be read.
    """
    import qtrace
    from qtrace.dashboards import marker_events

    trace = qtrace.read_trace(recording.trace, events=",".join(MODEL_EVENTS))
    names = qtrace.read_names(recording.names) if recording.names.exists() else None
    analysis = qtrace.analyze(trace, names=names)
    recording.report.write_text(qtrace.render_json(analysis), encoding="utf-8")
    written = [recording.report]
    if dashboard:
        markers = marker_events(trace.events, "memory_region_finalize")
        qtrace.write_dashboard(analysis, recording.dashboard, markers=markers)
        written.append(recording.dashboard)
    if text is not None:
        from rich.console import Console

        qtrace.render_text(analysis, Console(file=text, highlight=False))
    return written


def wrapper_script(qemu: Sequence[str], options: Sequence[str]) -> str:
    """A ``/bin/sh`` script that runs ``qtrace record OPTIONS -- QEMU "$@"``.

    For ``QTEST_QEMU_BINARY`` when it must be one path (meson sets it itself): name the file
    like the real binary (``qemu-system-x86_64``), since libqtest takes the target
    architecture from the text after the last ``-``.
    """
    command = [sys.executable, "-m", "qtrace", "record", *options, "--", *qemu]
    return (
        "#!/bin/sh\n"
        "# Written by qtrace record --wrapper: records every QEMU started through it.\n"
        f'exec {shlex.join(command)} "$@"\n'
    )


def write_wrapper(path: Path, qemu: Sequence[str], options: Sequence[str]) -> None:
    """Write ``wrapper_script`` to ``path``, executable."""
    if not qemu:
        raise UsageError("give the QEMU binary after --: qtrace record --wrapper FILE -- QEMU")
    path.write_text(wrapper_script(qemu, options), encoding="utf-8")
    path.chmod(0o755)


__all__ = [
    "TRACE_OPTIONS",
    "Recording",
    "exit_status",
    "recording_dir",
    "run_qemu",
    "wrapper_script",
    "write_outputs",
    "write_wrapper",
]
