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


def parse_trace_events(text: str) -> dict[str, EventDecl]:
    """Event declarations from the text of a ``trace-events`` / ``trace-events-all`` file.

    Lines that are blank, comments or not declarations are ignored; a ``vcpu`` property adds
    the implicit ``void *__cpu`` first argument, as tracetool does.

    Examples
    --------
    >>> decls = parse_trace_events('pci_cfg_read(const char *dev, unsigned offs) "%s %x"\\n')
    >>> decls["pci_cfg_read"].layout
    ((True, 'dev'), (False, 'offs'))
    """
    decls: dict[str, EventDecl] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DECL_RE.match(stripped)
        if match is None:
            continue
        args = _parse_args(match["args"])
        if args is None:
            continue
        props = (match["props"] or "").split()
        if "vcpu" in props:
            args = (("void *", "__cpu"), *args)
        decls[match["name"]] = EventDecl(match["name"], args)
    return decls


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
