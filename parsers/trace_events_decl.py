"""Event declarations from a QEMU build's ``trace-events-all``: the argument types of each event.

The simple backend writes arguments without their types, so decoding an event needs its
declaration: strings are ``u32 length + bytes``, everything else a u64. The rules below follow
QEMU's own ``scripts/tracetool`` (``Arguments.build``, ``is_string``, the ``vcpu`` property).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qtrace.errors import InputError
from qtrace.events import FLATVIEW_DESTROY, FLATVIEW_DESTROY_RCU, FLATVIEW_NEW

DEFAULT_TRACE_EVENTS = Path("/usr/share/qemu/trace-events-all")

# tracetool's Event._CRE, reduced to what decoding needs: properties, name, argument list.
_DECL_RE = re.compile(r"((?P<props>[\w\s]+)\s+)?(?P<name>\w+)\((?P<args>[^)]*)\)")
_STRING_TYPES = ("const char*", "char*", "const char *", "char *")


def is_string_type(arg_type: str) -> bool:
    """True when the simple backend records an argument of this C type as a string.

    Mirrors ``tracetool.backend.simple.is_string``: ``char *`` with exactly one ``*``.

    Examples
    --------
    >>> is_string_type("const char *"), is_string_type("void *"), is_string_type("char **")
    (True, False, False)
    """
    stripped = arg_type.lstrip()
    return stripped.startswith(_STRING_TYPES) and stripped.count("*") == 1


@dataclass(frozen=True)
class EventDecl:
    """One event's declaration: its name and ordered ``(C type, argument name)`` pairs."""

    name: str
    args: tuple[tuple[str, str], ...]

    @property
    def layout(self) -> tuple[tuple[bool, str], ...]:
        """``(is_string, name)`` per argument: events with equal layouts decode alike."""
        return tuple((is_string_type(t), n) for t, n in self.args)


def _parse_args(text: str) -> tuple[tuple[str, str], ...] | None:
    """tracetool's ``Arguments.build``; None when the list is malformed."""
    args: list[tuple[str, str]] = []
    for raw in text.split(","):
        arg = raw.strip()
        if not arg:
            return None
        if arg == "void":
            continue
        if "*" in arg:
            arg_type, ident = arg.rsplit("*", 1)
            arg_type += "*"
            ident = ident.strip()
        else:
            parts = arg.rsplit(None, 1)
            if len(parts) != 2:
                return None
            arg_type, ident = parts
        args.append((arg_type, ident))
    return tuple(args)


def _declaration(match: re.Match[str]) -> EventDecl | None:
    """The declaration a matched line makes; None when its argument list is malformed."""
    args = _parse_args(match["args"])
    if args is None:
        return None
    props = (match["props"] or "").split()
    if "vcpu" in props:
        args = (("void *", "__cpu"), *args)
    return EventDecl(match["name"], args)


def _declaration_lines(text: str) -> dict[str, list[re.Match[str]]]:
    """Each declared name's matched lines, in file order (argument lists not yet read)."""
    lines: dict[str, list[re.Match[str]]] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DECL_RE.match(stripped)
        if match is not None:
            lines.setdefault(match["name"], []).append(match)
    return lines


def parse_trace_events(text: str) -> dict[str, EventDecl]:
    """Event declarations from the text of a ``trace-events`` / ``trace-events-all`` file.

    Lines that are blank, comments or not declarations are ignored; a ``vcpu`` property adds
    the implicit ``void *__cpu`` first argument, as tracetool does. A name declared twice
    takes its last well-formed declaration.

    Examples
    --------
    >>> decls = parse_trace_events('pci_cfg_read(const char *dev, unsigned offs) "%s %x"\\n')
    >>> decls["pci_cfg_read"].layout
    ((True, 'dev'), (False, 'offs'))
    """
    decls = {}
    for name, matches in _declaration_lines(text).items():
        decl = _last_declaration(matches)
        if decl is not None:
            decls[name] = decl
    return decls


def _last_declaration(matches: list[re.Match[str]]) -> EventDecl | None:
    for match in reversed(matches):
        decl = _declaration(match)
        if decl is not None:
            return decl
    return None


class TraceEvents:
    """A build's ``trace-events-all``, its declarations read only for the names asked for (a
    trace maps thousands of events and records a few).

    Examples
    --------
    >>> TraceEvents.from_text('vcpu guest_cpu_enter(void) ""\\n').get("guest_cpu_enter")
    EventDecl(name='guest_cpu_enter', args=(('void *', '__cpu'),))
    """

    def __init__(self, lines: dict[str, list[re.Match[str]]], source: str) -> None:
        self._lines = lines
        self._decls: dict[str, EventDecl | None] = {}
        self.source = source

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> TraceEvents:
        return cls(_declaration_lines(text), source)

    @classmethod
    def load(cls, path: Path) -> TraceEvents:
        """Read a build's ``trace-events-all``; an unreadable file, or one that declares
        nothing, is an ``InputError``."""
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(
                f"{path}: cannot read trace-events file ({exc.strerror or exc})"
            ) from None
        events = cls.from_text(text, str(path))
        if not any(_last_declaration(m) is not None for m in events._lines.values()):
            raise InputError(f"{path}: no event declarations found (is it a trace-events file?)")
        return events

    def get(self, name: str) -> EventDecl | None:
        """The declaration of ``name``, or None when the file has none."""
        if name not in self._decls:
            matches = self._lines.get(name)
            self._decls[name] = None if matches is None else _last_declaration(matches)
        return self._decls[name]


def load_trace_events(path: Path) -> dict[str, EventDecl]:
    """Read a build's ``trace-events-all``; an unreadable file is an ``InputError``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read trace-events file ({exc.strerror or exc})") from None
    decls = parse_trace_events(text)
    if not decls:
        raise InputError(f"{path}: no event declarations found (is it a trace-events file?)")
    return decls


# The FlatView events never changed (system/memory.c), so they decode without a build's file.
_FLATVIEW_ARGS = (("void *", "view"), ("void *", "root"))
BUILTIN_DECLS: dict[str, EventDecl] = {
    name: EventDecl(name, _FLATVIEW_ARGS)
    for name in (FLATVIEW_NEW, FLATVIEW_DESTROY_RCU, FLATVIEW_DESTROY)
}
