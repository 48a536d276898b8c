"""Real QEMU log lines printed as QEMU's other options and backends print the same events.

The tests read a real ``-msg timestamp=on`` log (``TID@SEC.USEC:name args``) and write it
again, line for line, in another form: QEMU's message context, the syslog backend as a syslog
file holds it, the ust backend as babeltrace2 prints it, SystemTap, ftrace. Each form comes
from the documented format, not from qtrace's own code.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass

TS_LINE = re.compile(r"^(?P<tid>[0-9]+)@(?P<sec>[0-9]+)\.(?P<usec>[0-9]{6}):(?P<body>.*)$")
FLATVIEW_ARGS = re.compile(
    r"^(?P<view>0x[0-9a-f]+|\(nil\)) \(root (?P<root>0x[0-9a-f]+|\(nil\))\)$"
)
HOST = "ci-runner-7"
PROGRAM = "qemu-system-x86_64"
PID = 48213


@dataclass(frozen=True)
class TraceLine:
    """One line of a ``-msg timestamp=on`` log (QEMU up to 10.0)."""

    tid: int
    sec: int
    usec: int
    name: str
    args: str

    @property
    def body(self) -> str:
        return f"{self.name} {self.args}"

    @property
    def utc(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.sec, datetime.UTC).replace(
            microsecond=self.usec
        )


def read_lines(text: str) -> list[TraceLine | str]:
    """The log's lines: trace lines parsed, anything else kept as it is."""
    out: list[TraceLine | str] = []
    for line in text.splitlines():
        m = TS_LINE.match(line)
        if m is None:
            out.append(line)
            continue
        name, _, args = m["body"].partition(" ")
        out.append(TraceLine(int(m["tid"]), int(m["sec"]), int(m["usec"]), name, args))
    return out


def write(lines: list[TraceLine | str], form: Callable[[TraceLine], str]) -> bytes:
    return ("\n".join(form(x) if isinstance(x, TraceLine) else x for x in lines) + "\n").encode()


def iso(line: TraceLine) -> str:
    """glib's g_date_time_format_iso8601: UTC, microseconds, the fraction left out at 0."""
    stamp = line.utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{line.usec:06d}Z" if line.usec else f"{stamp}Z"


def thread_names(lines: list[TraceLine | str]) -> dict[int, str]:
    """Names QEMU gives the threads: the main loop, the RCU thread, a TCG vCPU."""
    trace = [x for x in lines if isinstance(x, TraceLine)]
    main = trace[0].tid
    rcu = {x.tid for x in trace if x.name == "flatview_destroy"}
    return {
        x.tid: "main" if x.tid == main else "call_rcu" if x.tid in rcu else "CPU 0/TCG"
        for x in trace
    }


def message_context(
    names: dict[int, str],
    *,
    timestamp: bool,
    guest: str | None,
    program: bool,
    thread_info: bool,
) -> Callable[[TraceLine], str]:
    """QEMU's ``-msg timestamp=,guest-name=,program-name=,thread-info=`` prefix."""

    def form(line: TraceLine) -> str:
        prefix = f"{iso(line)} " if timestamp else ""
        prefix += f"[{guest}] " if guest is not None else ""
        prefix += f"{PROGRAM}: " if program else ""
        prefix += f"({line.tid}:{names[line.tid]}): " if thread_info else ""
        return prefix + line.body

    return form


def syslog_classic(line: TraceLine) -> str:
    """A classic syslog file's line (the host's local time; UTC here), whole seconds."""
    when = line.utc
    stamp = f"{when.strftime('%b')} {when.day:2d} {when.strftime('%H:%M:%S')}"
    return f"{stamp} {HOST} {PROGRAM}[{PID}]: {line.body}"


def syslog_rfc3339(offset_minutes: int, colon: bool = True) -> Callable[[TraceLine], str]:
    """rsyslog's RFC 3339 stamps (or journalctl -o short-iso-precise without the colon)."""
    zone = datetime.timezone(datetime.timedelta(minutes=offset_minutes))

    def form(line: TraceLine) -> str:
        stamp = line.utc.astimezone(zone).isoformat(timespec="microseconds")
        if not colon:
            stamp = stamp[:-3] + stamp[-2:]
        return f"{stamp} {HOST} {PROGRAM}[{PID}]: {line.body}"

    return form


def _bt_payload(line: TraceLine, root_first: bool) -> str:
    m = FLATVIEW_ARGS.match(line.args)
    if m is None:  # other events: one string field (the tests compare FlatView events)
        return '{ text = "' + line.args + '" }'
    view, root = (("0x0" if p == "(nil)" else p) for p in (m["view"], m["root"]))
    fields = (
        [f"root = {root}", f"view = {view}"] if root_first else [f"view = {view}", f"root = {root}"]
    )
    return "{ " + ", ".join(fields) + " }"


def babeltrace(
    *,
    clock: str = "time",
    delta: bool = True,
    host: bool = True,
    context: bool = False,
    root_first: bool = False,
) -> Callable[[TraceLine], str]:
    """babeltrace2's text of the ust backend's events (nanoseconds; UTC, as --clock-gmt).

    ``clock``: ``time`` (default), ``date`` (``--clock-date``) or ``seconds``
    (``--clock-seconds``); ``context``: ``lttng add-context -t vpid -t vtid -t procname``.
    """

    def form(line: TraceLine) -> str:
        ns = f"{line.usec:06d}000"
        when = line.utc
        stamp = {
            "time": f"{when.strftime('%H:%M:%S')}.{ns}",
            "date": f"{when.strftime('%Y-%m-%d %H:%M:%S')}.{ns}",
            "seconds": f"{line.sec}.{ns}",
        }[clock]
        head = f"[{stamp}]" + (" (+0.000001234)" if delta else "")
        head += f" {HOST}" if host else ""
        groups = ["{ cpu_id = 0 }"]
        if context:
            groups.append(f'{{ vpid = {PID}, vtid = {line.tid}, procname = "qemu-system-x86" }}')
        groups.append(_bt_payload(line, root_first))
        return f"{head} qemu:{line.name}: " + ", ".join(groups)

    return form


def systemtap(line: TraceLine) -> str:
    """The dtrace backend's generated log probes: PID@NANOSECONDS name args."""
    return f"{PID}@{line.sec * 10**9 + line.usec * 1000} {line.body}"


def ftrace(line: TraceLine) -> str:
    """trace_marker lines in the ftrace buffer (the clock: seconds since boot, made up)."""
    since_boot = line.sec - 1_700_000_000
    return (
        f"  qemu-system-x86-{PID}  [001] d..1.  {since_boot}.{line.usec:06d}: "
        f"tracing_mark_write: {line.body}"
    )


def tid_timestamp(line: TraceLine) -> str:
    return f"{line.tid}@{line.sec}.{line.usec:06d}:{line.body}"
