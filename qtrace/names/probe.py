"""Read ``MemoryRegion::name`` (and ``alias``) of live MR pointers out of a QEMU's memory.

Standard library only: gdb runs this file in its own Python (``gdb -batch -p PID -x
probe.py``, see gdb.py), where ``read`` is ``gdb.selected_inferior().read_memory``; the tests
run the same functions over a dict of bytes.

Where the fields are:

- With debug info (a QEMU built with ``-g``, or its ``-dbgsym`` package), gdb gives the offsets
  of ``MemoryRegion::name`` and ``MemoryRegion::alias``.
- Without (Debian's ``qemu-system-x86`` has none), a layout probe finds them. First, a pointer
  counts only when it *is* a MemoryRegion now: QOM's first words lead from the object to its
  class (``Object::class``), its type (``ObjectClass::type``) and the type's name
  (``TypeImpl::name``), which must end in ``memory-region``. This needs no offset beyond the
  first word of each struct, stable since QOM exists. Then ``name`` is the 8-byte slot that,
  for most of those regions, holds a pointer to a printable NUL-terminated string (the only
  ``const char *`` of the struct; 0xe8 on QEMU 7.2). ``alias`` is the slot 0x48 before it:
  QEMU's layout ``alias, alias_offset, priority, subregions, subregions_link, coalesced, name``
  has not changed since 2.x. The probe checks it: for every region that slot must be null or
  point to another region; otherwise alias information is left out.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# read(address, size) -> the bytes, or None where the memory cannot be read.
Read = Callable[[int, int], "bytes | None"]

WORD = 8
PAGE = 4096
REGION_TYPE_SUFFIX = b"memory-region"  # TYPE_MEMORY_REGION, and "iommu-memory-region" etc.
STRUCT_WINDOW = 0x200  # bytes scanned for the name slot (MemoryRegion is ~0x110 bytes)
NAME_LIMIT = 256  # longest name read
ALIAS_BEFORE_NAME = 0x48  # alias_offset(8) priority(8) three list heads(48), then name
REQUEST_ENV = "QTRACE_GDB_REQUEST"


@dataclass(frozen=True)
class Layout:
    """Where ``name`` and ``alias`` are in a MemoryRegion, and how that was learned."""

    name_offset: int
    alias_offset: int | None  # None: alias information not available
    method: str  # "debuginfo" or "probe"


@dataclass(frozen=True)
class Region:
    """A live MemoryRegion: its name and, for an alias, the aliased region's pointer and name."""

    root: int
    name: str
    alias_root: int | None = None
    alias_of: str | None = None


def read_word(read: Read, address: int) -> int | None:
    data = read(address, WORD)
    return None if data is None or len(data) < WORD else int(struct.unpack("<Q", data)[0])


def read_block(read: Read, address: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``address``, stopping at the first page that cannot be read."""
    out = b""
    while len(out) < size:
        at = address + len(out)
        chunk = read(at, min(size - len(out), PAGE - at % PAGE))
        if not chunk:
            break
        out += chunk
    return out


def read_string(read: Read, address: int, *, printable: bool = False) -> str | None:
    """The NUL-terminated string at ``address`` (at most NAME_LIMIT bytes), else None.

    With ``printable``, only a non-empty string of printable ASCII counts (the probe's test).
    """
    if address < PAGE:
        return None
    data = read_block(read, address, NAME_LIMIT + 1)
    end = data.find(b"\0")
    if end < 0 or (printable and (end == 0 or not all(0x20 <= b < 0x7F for b in data[:end]))):
        return None
    return data[:end].decode("utf-8", errors="replace")


def is_region(read: Read, address: int) -> bool:
    """Whether a MemoryRegion lives at ``address``: object -> class -> type -> type name."""
    if address < PAGE or address % WORD:
        return False
    pointer = address
    for _ in range(3):  # Object::class, ObjectClass::type, TypeImpl::name
        found = read_word(read, pointer)
        if found is None or found < PAGE:
            return False
        pointer = found
    type_name = read_string(read, pointer, printable=True)
    return type_name is not None and type_name.encode().endswith(REGION_TYPE_SUFFIX)


def _slots(block: bytes) -> list[int]:
    return [
        int(v) for v in struct.unpack(f"<{len(block) // WORD}Q", block[: len(block) // WORD * WORD])
    ]


def probe_layout(read: Read, regions: Sequence[int]) -> Layout | None:
    """Find ``name`` (and check ``alias``) over live MemoryRegion pointers (module docstring).

    None when no slot reads as a string for at least half of the regions.
    """
    votes: dict[int, int] = {}
    blocks = {address: _slots(read_block(read, address, STRUCT_WINDOW)) for address in regions}
    for words in blocks.values():
        # Slot 0 is the class pointer; names are g_strdup()ed, so 8-aligned.
        for index, value in enumerate(words[1:], start=1):
            if value >= PAGE and value % WORD == 0 and read_string(read, value, printable=True):
                votes[index * WORD] = votes.get(index * WORD, 0) + 1
    if not votes:
        return None
    name_offset = max(sorted(votes), key=lambda offset: votes[offset])
    if 2 * votes[name_offset] < len(regions):
        return None
    alias_offset = name_offset - ALIAS_BEFORE_NAME
    for address, words in blocks.items():
        index = alias_offset // WORD
        target = words[index] if 0 <= index < len(words) else None
        if target is None or (target != 0 and (target == address or not is_region(read, target))):
            return Layout(name_offset, None, "probe")
    return Layout(name_offset, alias_offset, "probe")


def resolve(
    read: Read, pointers: Sequence[int], layout: Layout | None = None
) -> tuple[Layout | None, list[Region]]:
    """The live MemoryRegions among ``pointers``, named (with ``layout``, else a probe).

    Pointers that are not a live MemoryRegion now (freed, reused for something else) are left
    out.

    Examples
    --------
    Nothing at an address that is no MemoryRegion is named (``read`` reads a process's
    memory; here one that holds nothing):

    >>> resolve(lambda address, size: None, [0x5600102C5C00])
    (None, [])
    """
    live = [p for p in dict.fromkeys(pointers) if is_region(read, p)]
    if layout is None:
        layout = probe_layout(read, live)
    if layout is None:
        return None, []
    found = []
    for address in live:
        name_pointer = read_word(read, address + layout.name_offset)
        name = read_string(read, name_pointer) if name_pointer else None
        if name is None:
            continue
        alias_root = alias_of = None
        if layout.alias_offset is not None:
            target = read_word(read, address + layout.alias_offset)
            if target and is_region(read, target):
                target_name = read_word(read, target + layout.name_offset)
                alias_root = target
                alias_of = (read_string(read, target_name) if target_name else None) or ""
        found.append(Region(address, name, alias_root, alias_of))
    return layout, found


# ---- run inside gdb -------------------------------------------------------------------------


def _debuginfo_layout(gdb: Any) -> Layout | None:
    """The offsets gdb's debug info gives, when it has the MemoryRegion type."""
    try:
        fields = {f.name: f for f in gdb.lookup_type("MemoryRegion").fields()}
    except Exception:  # gdb.error: no debug info for the type
        return None
    if "name" not in fields:
        return None
    alias = fields.get("alias")
    return Layout(
        fields["name"].bitpos // 8, None if alias is None else alias.bitpos // 8, "debuginfo"
    )


def _gdb_main() -> None:
    """Entry point when gdb runs this file: read the request, write the answer (JSON files)."""
    gdb: Any = importlib.import_module("gdb")  # only exists inside gdb

    with open(os.environ[REQUEST_ENV], encoding="utf-8") as fh:
        request = json.load(fh)
    answer: dict[str, object]
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        answer = {"error": "no process attached"}
    else:

        def read(address: int, size: int) -> bytes | None:
            try:
                return bytes(inferior.read_memory(address, size))
            except (gdb.MemoryError, gdb.error, OverflowError, ValueError):
                return None

        # QEMU is stopped from the attach to the detach: the names hold at this time.
        wall_ns, monotonic_ns = time.time_ns(), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        layout, regions = resolve(read, request["pointers"], _debuginfo_layout(gdb))
        answer = {
            "time_ns": wall_ns,
            "monotonic_ns": monotonic_ns,
            "layout": None if layout is None else asdict(layout),
            "regions": [asdict(r) for r in regions],
        }
    with open(request["answer"], "w", encoding="utf-8") as fh:
        json.dump(answer, fh)


if __name__ == "__main__":
    _gdb_main()
