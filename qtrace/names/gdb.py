"""Name the root pointers of a running QEMU's trace by reading its memory with gdb.

``resolve_names(pid, trace, out)`` reads the root pointers of the trace's last run (the QEMU
that is running), attaches Debian's ``gdb`` in batch mode for one snapshot (probe.py runs
inside it: QEMU is stopped only from the attach to the detach, a fraction of a second), and
writes a names file. With ``every`` it repeats until QEMU exits or ``stop`` is set, writing a
line only for a pointer that is new or now names another region, so pointers reused later
get their own, later lines. Times are in the trace's clock: wall-clock for log traces,
``CLOCK_MONOTONIC`` for simple-backend traces.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from qtrace.errors import InputError, QtraceError, UsageError
from qtrace.events import FLATVIEW_EVENTS
from qtrace.names import probe
from qtrace.names.file import format_line
from qtrace.names.probe import Layout, Region

GDB = "gdb"
GDB_TIMEOUT_S = 60.0
# gdb reads no init file, loads no shared-library symbols (QEMU's own symbols, and its debug
# info when installed, are all it needs) and asks no debuginfod server: a snapshot stays short.
GDB_OPTIONS = (
    "-nx",
    "-q",
    "-batch",
    "-iex",
    "set debuginfod enabled off",
    "-iex",
    "set auto-solib-add off",
)


class ResolverError(QtraceError):
    """gdb is missing, cannot attach, or the process holds none of the trace's regions."""

    exit_code = InputError.exit_code


def find_gdb() -> str:
    """The gdb program, or a one-line error saying how to install it."""
    found = shutil.which(GDB)
    if found is None:
        raise ResolverError("gdb is not installed (Debian: apt-get install gdb)")
    return found


def qemu_program(pid: int) -> str:
    """The program of process ``pid`` if it is a QEMU; a usage error otherwise."""
    proc = Path(f"/proc/{pid}")
    if pid <= 0 or not proc.is_dir():
        raise UsageError(f"no process with PID {pid}")
    try:
        program = os.readlink(proc / "exe")
    except OSError:
        try:
            program = (proc / "comm").read_text().strip()
        except OSError:
            raise UsageError(f"process {pid} has exited") from None
    if "qemu" not in Path(program).name.removesuffix(" (deleted)"):
        raise UsageError(f"process {pid} is {program}, not a QEMU")
    return program


def is_running(pid: int) -> bool:
    """Whether process ``pid`` still exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass(frozen=True)
class Snapshot:
    """What one gdb attach read: when, how the layout was found, the live regions."""

    time_ns: int
    monotonic_ns: int
    layout: Layout | None
    regions: list[Region]


def snapshot(pid: int, pointers: list[int], *, gdb: str | None = None) -> Snapshot:
    """Attach gdb to ``pid`` once and read the regions at ``pointers`` (probe.py).

    Examples
    --------
    A process that is gone (or cannot be traced) is a ``ResolverError``; on a running QEMU
    the snapshot holds a ``Region`` (pointer, name, alias target) per live region:

    >>> snapshot(999_999_999, [0x5600102C5C00])
    Traceback (most recent call last):
    ...
    qtrace.names.gdb.ResolverError: gdb could not attach to process 999999999: ...
    """
    program = gdb or find_gdb()
    with tempfile.TemporaryDirectory(prefix="qtrace-gdb-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        request.write_text(json.dumps({"pointers": pointers, "answer": str(answer)}))
        argv = [program, *GDB_OPTIONS, "-p", str(pid), "-x", probe.__file__]
        env = {**os.environ, probe.REQUEST_ENV: str(request)}
        try:
            done = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=GDB_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ResolverError(f"gdb did not finish within {GDB_TIMEOUT_S:.0f} s") from None
        finally:
            if not answer.exists():
                # A gdb killed or interrupted while attached may leave QEMU stopped.
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)
        said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        # gdb's own last word says why (e.g. "ptrace: Operation not permitted.").
        reason = said[-1] if said else f"gdb exited with status {done.returncode}"
        if not answer.exists():
            raise ResolverError(f"gdb could not read process {pid}: {reason}")
        result: dict[str, Any] = json.loads(answer.read_text())
    if "error" in result:
        raise ResolverError(f"gdb could not attach to process {pid}: {reason}")
    layout = None if result["layout"] is None else Layout(**result["layout"])
    return Snapshot(
        result["time_ns"],
        result["monotonic_ns"],
        layout,
        [Region(**region) for region in result["regions"]],
    )


@dataclass(frozen=True)
class TraceRoots:
    """The non-nil root pointers of a trace's last run, and the trace's clock."""

    pointers: list[int]
    clock: str


def trace_roots(path: str | Path) -> TraceRoots:
    """The roots of the last run of the trace at ``path`` so far (none while it is empty).

    The last run is the QEMU that is running: an earlier run in the same log was another
    process.
    """
    import polars as pl

    from qtrace.ingest import read_trace
    from qtrace.names.scope import run_of

    if not Path(path).exists() or Path(path).stat().st_size == 0:
        return TraceRoots([], "none")
    trace = read_trace(path, events=",".join(FLATVIEW_EVENTS))
    events = trace.events.filter(pl.col("root").is_not_null())
    if events.height == 0:
        return TraceRoots([], trace.clock)
    runs = run_of(events["seq"], trace.events)
    last = events.filter(runs == runs.max())
    pointers = last.filter(pl.col("root") != 0)["root"].unique().sort().to_list()
    return TraceRoots([int(p) for p in pointers], trace.clock)


@dataclass
class NamesWriter:
    """Writes names-file lines, each pointer again only when it names another region."""

    out: IO[str]
    written: dict[int, tuple[str, int | None, str | None]] = field(default_factory=dict)
    layout: Layout | None = None
    lines: int = 0

    def header(self, pid: int, program: str, trace: str) -> None:
        self.out.write(f"# qtrace names: process {pid} ({program}), roots of {trace}\n")
        self.out.write("# time (the trace's clock) root-pointer MemoryRegion::name ")
        self.out.write("[alias of pointer name] method\n")
        self.out.flush()

    def add(self, snap: Snapshot, clock: str) -> int:
        """Write the snapshot's new or changed names; returns how many lines."""
        at_ns = snap.monotonic_ns if clock.startswith("monotonic") else snap.time_ns
        if snap.layout is not None and snap.layout != self.layout:
            self.layout = snap.layout
            alias = snap.layout.alias_offset
            self.out.write(
                f"# layout ({snap.layout.method}): name at {snap.layout.name_offset:#x}, alias "
                + ("unknown" if alias is None else f"at {alias:#x}")
                + "\n"
            )
        count = 0
        for region in sorted(snap.regions, key=lambda r: r.root):
            key = (region.name, region.alias_root, region.alias_of)
            if self.written.get(region.root) == key:
                continue
            self.written[region.root] = key
            label = f"gdb {snap.layout.method}" if snap.layout else "gdb"
            self.out.write(
                format_line(
                    at_ns, region.root, region.name, region.alias_root, region.alias_of, label
                )
                + "\n"
            )
            count += 1
        self.out.flush()
        self.lines += count
        return count


@dataclass
class Resolved:
    """What a resolver did: snapshots taken, lines written, regions named."""

    snapshots: int = 0
    lines: int = 0
    named: set[int] = field(default_factory=set)
    layout: Layout | None = None


class Resolver:
    """Snapshots of one QEMU's regions, written to one names file as they come.

    ``snap()`` takes one snapshot (nothing while the trace has no root yet); ``resolve_names``
    and ``qtrace record --names`` call it once or periodically.
    """

    def __init__(self, pid: int, trace: str | Path, out: IO[str]) -> None:
        self.pid = pid
        self.trace = trace
        self.gdb = find_gdb()
        self.program = qemu_program(pid)
        self.writer = NamesWriter(out)
        self.writer.header(pid, self.program, str(trace))
        self.done = Resolved()

    def snap(self) -> bool:
        """One snapshot of the roots of the trace so far; False when there was nothing to read.

        The first snapshot that reads any root must find regions (``ResolverError`` if not).
        """
        roots = trace_roots(self.trace)
        if not roots.pointers or not is_running(self.pid):
            return False
        snap = snapshot(self.pid, roots.pointers, gdb=self.gdb)
        if self.done.snapshots == 0 and not snap.regions:
            raise ResolverError(
                f"none of the {len(roots.pointers)} root pointers of {self.trace} is a "
                f"MemoryRegion of process {self.pid} whose name could be read "
                "(is that QEMU's trace?)"
            )
        self.done.snapshots += 1
        self.done.lines += self.writer.add(snap, roots.clock)
        self.done.named.update(r.root for r in snap.regions)
        self.done.layout = snap.layout or self.done.layout
        return True


def resolve_names(
    pid: int,
    trace: str | Path,
    out: str | Path | IO[str],
    *,
    every: float | None = None,
    stop: threading.Event | None = None,
) -> Resolved:
    """Write the names of the roots of ``trace`` as process ``pid`` holds them now.

    Parameters
    ----------
    pid
        The running QEMU that writes ``trace``.
    trace
        Its trace (log or simple backend), read again before each snapshot.
    out
        The names file to write (``-``: standard output), or an open text file.
    every
        Repeat every so many seconds until QEMU exits or ``stop`` is set; None: once.

    Raises ``UsageError`` when ``pid`` is not a QEMU, ``ResolverError`` when gdb is missing
    or cannot attach, or when none of the trace's roots is a region of that process;
    ``InputError`` when the trace does not exist (once) or cannot be read.

    Examples
    --------
    Only a QEMU is read: any other process is a usage error, said before gdb attaches.

    >>> resolve_names(1, "samples/pc-boot-ts.log", "-")
    Traceback (most recent call last):
    ...
    qtrace.errors.UsageError: process 1 is ..., not a QEMU
    """
    if every is None and not Path(trace).is_file():
        raise InputError(f"{trace}: no such file")
    find_gdb(), qemu_program(pid)  # before the output is opened (and emptied)
    stop = stop or threading.Event()
    with contextlib.ExitStack() as stack:
        if isinstance(out, str | Path):
            handle: IO[str] = (
                sys.stdout
                if str(out) == "-"
                else stack.enter_context(open(out, "w", encoding="utf-8"))
            )
        else:
            handle = out
        resolver = Resolver(pid, trace, handle)
        while True:
            resolver.snap()
            if every is None or not is_running(pid) or stop.wait(every):
                break
    return resolver.done


__all__ = [
    "Resolved",
    "Resolver",
    "ResolverError",
    "Snapshot",
    "TraceRoots",
    "find_gdb",
    "is_running",
    "qemu_program",
    "resolve_names",
    "snapshot",
    "trace_roots",
]
