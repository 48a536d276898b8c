"""The simple backend's binary layout (version 4), and the file header that gives its byte order.

After a 24-byte header, records follow back to back, each starting with a u64 type word::

    mapping (type 0): u64 event_id | u32 name_len | name bytes
    event   (type 1): u64 event_id | u64 timestamp_ns | u32 length | u32 pid | arguments

``length`` counts an event record without its type word. Everything is in the writer's
native byte order, which the header's magic number tells.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

from qtrace.errors import InputError

HEADER_EVENT_ID = 0xFFFF_FFFF_FFFF_FFFF
MAGIC = 0xF2B1_77CB_0AA4_29B4
SUPPORTED_VERSION = 4
OLD_VERSIONS = (0, 2, 3)
DROPPED_EVENT_ID = 0xFFFF_FFFF_FFFF_FFFE
RECORD_MAPPING = 0
RECORD_EVENT = 1

HEADER_BYTES = 24  # header id, magic, version
EVENT_HEADER_BYTES = 32  # type word, event id, timestamp, length, pid
MAPPING_HEADER_BYTES = 20  # type word, event id, name length
MIN_EVENT_LENGTH = 24  # the length field counts id, timestamp, length and pid (not the type word)
# QEMU allows 10 arguments and cuts strings at 512 bytes: a longer record is a damaged one.
MAX_EVENT_LENGTH = 24 + 10 * (4 + 512)
MAX_NAME_BYTES = 1024
MAX_RECORD_BYTES = max(8 + MAX_EVENT_LENGTH, MAPPING_HEADER_BYTES + MAX_NAME_BYTES)
# A FlatView event's length: its arguments are two u64, view and root.
FLATVIEW_LENGTH = MIN_EVENT_LENGTH + 16
# Enough of the file to check the header and the record after it.
HEAD_BYTES = HEADER_BYTES + MAX_RECORD_BYTES

# tracetool takes event names as C identifiers: a mapping whose name is anything else is damaged.
_EVENT_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
# The same, byte by byte: which bytes can start a name, and which can be in one.
NAME_START = np.zeros(256, bool)
NAME_START[[*range(ord("A"), ord("Z") + 1), *range(ord("a"), ord("z") + 1), ord("_")]] = True
NAME_BYTES = NAME_START.copy()
NAME_BYTES[ord("0") : ord("9") + 1] = True
ORDER_NAMES = {"<": "little-endian", ">": "big-endian"}


def is_event_name(raw: bytes) -> bool:
    """Whether a mapping record's name bytes can be a QEMU event name.

    Examples
    --------
    >>> is_event_name(b"flatview_new"), is_event_name(b"flatview\\x00new"), is_event_name(b"")
    (True, False, False)
    """
    return _EVENT_NAME.match(raw) is not None


def first_record_is_sound(head: bytes, order: str) -> bool:
    """Whether the record right after the header reads as a sound one in byte ``order``.

    A file that ends with its header counts as sound (there is nothing to contradict it).
    """
    if len(head) < HEADER_BYTES + 8:
        return len(head) == HEADER_BYTES
    (rtype,) = struct.unpack_from(order + "Q", head, HEADER_BYTES)
    if rtype == RECORD_EVENT and len(head) >= HEADER_BYTES + EVENT_HEADER_BYTES:
        (length,) = struct.unpack_from(order + "I", head, HEADER_BYTES + 24)
        return bool(MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH)
    if rtype == RECORD_MAPPING and len(head) >= HEADER_BYTES + MAPPING_HEADER_BYTES:
        (name_len,) = struct.unpack_from(order + "I", head, HEADER_BYTES + 16)
        start = HEADER_BYTES + MAPPING_HEADER_BYTES
        name = head[start : start + name_len]
        return 0 < name_len <= MAX_NAME_BYTES and len(name) == name_len and is_event_name(name)
    return False


@dataclass(frozen=True)
class Header:
    """What the header says: the records' byte order, and what was odd about it."""

    order: str  # struct's byte-order character for the records: '<' or '>'
    warnings: tuple[str, ...] = ()


def read_header(head: bytes, size: int, name: str) -> Header:
    """Check the header at the start of ``head`` (the file's first ``HEAD_BYTES``).

    A header with one damaged field is read when the records after it are sound, with a
    warning; a header whose byte order differs from its records' is read in the records'
    order. Anything else is an ``InputError`` that says what it is.

    Examples
    --------
    >>> head = struct.pack("<QQQ", HEADER_EVENT_ID, MAGIC, 4)
    >>> read_header(head, len(head), "t").order
    '<'
    """
    if size < HEADER_BYTES or len(head) < HEADER_BYTES:
        raise InputError(
            f"{name}: too short for a QEMU simple trace ({size} bytes; the header alone is "
            f"{HEADER_BYTES})"
        )
    fields = {order: struct.unpack_from(order + "QQQ", head) for order in "<>"}
    header_id, magic, _ = fields["<"]
    id_sound = header_id == HEADER_EVENT_ID
    warnings: list[str] = []
    by_magic = [order for order in "<>" if fields[order][1] == MAGIC]
    by_version = [order for order in "<>" if fields[order][2] == SUPPORTED_VERSION]
    damaged = (
        f"{name}: a QEMU simple trace with a damaged header (magic {magic:#018x}, expected "
        f"{MAGIC:#018x})"
    )
    if by_magic:
        order = by_magic[0]
    elif not id_sound:
        raise InputError(f"{name}: not a QEMU simple trace (bad magic)")
    elif by_version and any(first_record_is_sound(head, o) for o in "<>"):
        order = by_version[0]
        warnings.append(f"{damaged}; the records after it are sound: read as version 4")
    else:
        raise InputError(damaged)
    version = fields[order][2]
    other = ">" if order == "<" else "<"
    if version != SUPPORTED_VERSION and fields[other][2] != SUPPORTED_VERSION:
        kind = "unsupported" if version in OLD_VERSIONS else "unknown"
        raise InputError(f"{name}: {kind} simple trace version {version} (qtrace reads version 4)")
    if not id_sound:
        warnings.append(
            f"{name}: damaged header (first word {header_id:#018x}, expected "
            f"{HEADER_EVENT_ID:#018x}); read as version 4"
        )
    if version != SUPPORTED_VERSION:
        warnings.append(
            f"{name}: the header's version field is {ORDER_NAMES[other]}, its magic "
            f"{ORDER_NAMES[order]}"
        )
    if not first_record_is_sound(head, order) and first_record_is_sound(head, other):
        warnings.append(
            f"{name}: the header is {ORDER_NAMES[order]} but the records are "
            f"{ORDER_NAMES[other]}; read as {ORDER_NAMES[other]}"
        )
        order = other
    return Header(order, tuple(warnings))
