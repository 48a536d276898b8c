"""The dialect table: every line form of a QEMU text trace qtrace reads, one entry each.

A dialect is how a line is prefixed before QEMU's ``NAME ARGS`` body: its regex (named
groups feed ``fields.columns``), the clock its stamp reads, and whether the prefix vouches
for the line (``prefixed``). The dialect is decided per line, never per file.

Clocks (what lands in ``ts_ns``):

- ``none``: no clock; lines are ordered by position.
- ``wall-us``: UTC wall clock, microseconds (``gettimeofday()``, an ISO 8601 or RFC 3339 stamp,
  its offset applied).
- ``wall-ns``: wall clock, nanoseconds (SystemTap's ``gettimeofday_ns()``; babeltrace2's
  ``--clock-date`` or ``--clock-seconds`` stamps, read as UTC since the zone is not printed).
- ``monotonic-us``: the kernel's trace clock (seconds since boot), ftrace.
- ``local-no-year``: classic syslog, ``Feb 13 10:30:08``: the syslog host's local time without
  a year or zone. ``ts_ns`` counts from 1 January 00:00 of the first line's year, every year
  read as a leap year (so 29 February reads); a month earlier than the previous line's starts
  the next year. Durations are exact except across the end of February of a common year (one
  day too long). Lines of the same second keep their line order.
- ``local-no-date``: babeltrace2's default ``[10:30:08.123456789]``: the time of day without
  a date, in the zone babeltrace2 printed. ``ts_ns`` counts from midnight of the first line's
  day; a time more than 12 hours earlier than the previous line's is the next day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = r"(?P<name>[a-z_][A-Za-z0-9_]*)"
# Without a prefix that only trace lines have, a name must look like QEMU's (subsystem_what),
# so that prose ("char device redirected to ...") is not taken for an event.
QEMU_NAME = r"(?P<name>(?:_|[a-z][A-Za-z0-9]*_)[A-Za-z0-9_]*)"
TAIL = r"(?: (?P<args>.*))?$"  # QEMU always prints "name " even for events without arguments
STAMP = r"(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
ISO = STAMP + "Z"  # QEMU's own: UTC, the fraction left out when it is zero
SYSLOG_TAG = r" (?P<host>\S+) (?P<tag>[^\s\[\]]+)\[(?P<pid>[0-9]+)\]: "
RFC3339 = STAMP + r"(?P<tz>Z|[+-][0-9]{2}:?[0-9]{2})"
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
SYSLOG_STAMP = (
    rf"(?P<mon>{MONTHS}) +(?P<day>[0-9]{{1,2}}) (?P<hms>[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?"
)
# QEMU's message context (Berrangé's series): [STAMP ][\[GUEST\] ][PROGRAM: ][(TID:THREAD): ].
# Thread names hold spaces and slashes ("CPU 0/TCG"); the guest name is any text in brackets.
GUEST = r"\[(?P<guest>.*?)\] "
PROGRAM = r"(?P<prog>[A-Za-z0-9_./+-]+): "
THREAD = r"\((?P<tid>[0-9]+):(?P<thread>.*?)\): "
CONTEXT = f"(?:{GUEST})?(?:{PROGRAM})?(?:{THREAD})?"
# babeltrace2's text: [CLOCK] (+DELTA) HOST qemu:NAME: { FIELDS }, { FIELDS }
BT_TIME = r"(?P<bt_time>[0-9]{2}:[0-9]{2}:[0-9]{2})\.(?P<bt_frac>[0-9]{1,9})"
BT_DATE = (
    rf"(?:(?P<bt_date>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}) {BT_TIME}"
    r"|(?P<bt_sec>[0-9]+)\.(?P<bt_secfrac>[0-9]{1,9}))"
)
BT_TAIL = (
    # QEMU's LTTng provider is "qemu": other providers' events (lttng_ust_statedump:...) are
    # no QEMU trace lines.
    r"\] (?:\((?P<delta>[^)]*)\) )?(?:(?P<host>\S+) )?qemu:" + NAME + r":(?: (?P<args>.*))?$"
)
FTRACE_MARK = "tracing_mark_write: "


def groups_only(pattern: str) -> str:
    """``pattern`` as a plain match test: no named groups, stopping after the event name."""
    head = pattern.removesuffix(TAIL) + r"(?: |$)" if pattern.endswith(TAIL) else pattern
    return re.sub(r"\(\?P<[a-z_]+>", "(?:", head)


def _context_match(stamp: str) -> str:
    """The message-context test: at least one of guest, program and thread must be there."""
    guest, program, thread = (groups_only(p) for p in (GUEST, PROGRAM, THREAD))
    parts = f"(?:{guest}(?:{program})?(?:{thread})?|{program}(?:{thread})?|{thread})"
    return f"^{stamp}{parts}{groups_only(QEMU_NAME)}(?: |$)"


@dataclass(frozen=True)
class Dialect:
    """One way a line of a QEMU trace is prefixed.

    ``pattern`` captures the fields (named groups); ``match``, a regex without captures, says
    whether a line is of this dialect (the groups-only ``pattern`` unless given).
    ``prefixed`` is False for ``bare``, whose lines only their name vouches for.
    """

    name: str
    clock: str
    pattern: str
    match_pattern: str | None = None
    prefixed: bool = True

    @property
    def match(self) -> str:
        return self.match_pattern or groups_only(self.pattern)


DIALECTS: tuple[Dialect, ...] = (
    # In this order a line is tried against them: the first that matches reads it.
    Dialect(
        "tid-timestamp",
        "wall-us",
        rf"^(?P<tid>[0-9]+)@(?P<sec>[0-9]+)\.(?P<frac>[0-9]+):{NAME}{TAIL}",
    ),
    Dialect("systemtap", "wall-ns", rf"^(?P<pid>[0-9]+)@(?P<nsec>[0-9]+) {NAME}{TAIL}"),
    # Before iso8601: "STAMPZ host tag[pid]: name" would otherwise read as an event "host".
    Dialect("syslog-rfc3339", "wall-us", rf"^{RFC3339}{SYSLOG_TAG}{QEMU_NAME}{TAIL}"),
    Dialect(
        "iso8601-message-context",
        "wall-us",
        rf"^{ISO} {CONTEXT}{QEMU_NAME}{TAIL}",
        _context_match(groups_only(ISO) + " "),
    ),
    Dialect("iso8601", "wall-us", rf"^{ISO} {NAME}{TAIL}"),
    Dialect("message-context", "none", rf"^{CONTEXT}{QEMU_NAME}{TAIL}", _context_match("")),
    Dialect("syslog", "local-no-year", rf"^{SYSLOG_STAMP}{SYSLOG_TAG}{QEMU_NAME}{TAIL}"),
    Dialect("babeltrace2-date", "wall-ns", rf"^\[{BT_DATE}{BT_TAIL}"),
    Dialect("babeltrace2", "local-no-date", rf"^\[{BT_TIME}{BT_TAIL}"),
    Dialect("ftrace", "monotonic-us", rf"^(?P<head>.*?){FTRACE_MARK}{NAME}{TAIL}"),
    Dialect("bare", "none", rf"^{QEMU_NAME}{TAIL}", prefixed=False),
)
BY_NAME = {d.name: d for d in DIALECTS}
CODE = {d.name: i for i, d in enumerate(DIALECTS)}  # the small integer each row carries
BARE = CODE["bare"]
# Syslog lines whose stamp ends in Z have the shape of an iso8601 line of an event "HOST".
SYSLOG_Z_SHAPE = "^" + groups_only(ISO) + groups_only(SYSLOG_TAG)
# QEMU 11's default message context, with or without the stamp: "PROGRAM: (TID:THREAD): "
# (a thread name without ':'), which ``fields`` cuts without capture groups.
DEFAULT_CONTEXT = groups_only(PROGRAM) + r"\([0-9]+:[^:]*?\): " + groups_only(QEMU_NAME) + "(?: |$)"
DEFAULT_CONTEXT_SHAPES = {
    "message-context": "^" + DEFAULT_CONTEXT,
    "iso8601-message-context": "^" + groups_only(ISO) + " " + DEFAULT_CONTEXT,
}
