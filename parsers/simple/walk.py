"""Record walk and resynchronisation: where the records are, and what was damaged on the way.

The walk goes from the header to the end of the file. Runs of sound event records are taken
by ``scan`` (in bulk) and handed on, to be decoded while their bytes are in memory; mapping
records are read in a loop of their own. Damage (a record type that is neither, a length out
of range, a mapping whose name is no event name, a length running past the end while sound
records follow) is skipped up to the next offset where a chain of sound records starts
(``resync``), event or mapping records alike, so that a damaged record costs that record and
not the rest of the file. A wrong but plausible length in the record before the damage makes
that record the damaged one: its length ran into the records after it (an event record) or
cut its own name short (a mapping record).

A record is handed on only once the record after it has been seen sound: the last record of
each run is held back until then, so a record whose length turns out wrong is never decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol

from qtrace.parsers.simple.file import TraceFile, Window
from qtrace.parsers.simple.layout import (
    EVENT_HEADER_BYTES,
    MAPPING_HEADER_BYTES,
    MAX_EVENT_LENGTH,
    MAX_NAME_BYTES,
    MAX_RECORD_BYTES,
    MIN_EVENT_LENGTH,
    NAME_BYTES,
    RECORD_EVENT,
    RECORD_MAPPING,
    is_event_name,
)
from qtrace.parsers.simple.mappings import Mapping
from qtrace.parsers.simple.resync import Resync
from qtrace.parsers.simple.scan import Records, Scratch, scan


@dataclass
class Segment:
    """Event records back to back over ``[start, end)``, all of them sound."""

    start: int
    end: int
    count: int


@dataclass(frozen=True)
class Damage:
    """Bytes skipped over damage: where, how many, and what was wrong there."""

    offset: int
    size: int
    reason: str


@dataclass(frozen=True)
class Cut:
    """The file ends inside a record: ``have`` of its ``needed`` bytes are there."""

    offset: int
    have: int
    needed: int


@dataclass
class Walk:
    """What the walk found: the event records, the mappings, and the damage."""

    segments: list[Segment] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    cut: Cut | None = None
    records: int = 0  # event records handed on
    # Mapping records after event records (the format allows them; QEMU writes none): the
    # records before them may need those names, so they are decoded after the walk instead.
    late_mappings: bool = False


class Sink(Protocol):
    """Where the walk hands sound event records on to, to be decoded."""

    def keep(self, records: Records, mappings: list[Mapping]) -> Records:
        """The records worth decoding (selected, or of unknown ids), in arrays of their own
        (the scan's are reused); ``mappings``: those read so far."""
        ...

    def decode(self, records: Records, window: Window, mappings: list[Mapping]) -> None:
        """Decode ``records`` (kept ones) while ``window`` holds their bytes."""
        ...


class Walker:
    """Walk the records of one file from the first record after the header to its end."""

    def __init__(
        self, file: TraceFile, window: Window, order: str, sink: Sink | None, max_records: int
    ) -> None:
        self.file = file
        self.window = window
        self.order = order
        self.sink = sink
        self.max_records = max(2, max_records)  # the held-back record must not be all of a run
        self.walk = Walk()
        self.resync = Resync(file, order, self.walk.mappings)
        self._u64 = struct.Struct(order + "Q").unpack_from
        self._event_header = struct.Struct(order + "QQQII").unpack_from
        self._mapping_header = struct.Struct(order + "QQI").unpack_from
        self._block = 0
        self._records_at_mapping = 0  # records handed on when the last mapping was read
        self._scratch = Scratch()
        # Records handed on but not yet decoded: they go together, before the window moves.
        self._pending: list[Records] = []
        self._pending_count = 0
        window.before_load = self._flush

    def run(self, start: int) -> Walk:
        window, file = self.window, self.file
        pos = start
        last_mapping: Mapping | None = None  # the record just before pos, if a mapping
        while pos < file.size:
            if not window.ensure(pos, MAX_RECORD_BYTES):
                break  # the file shrank below pos
            held: Records | None = None
            event_next = self._sound_event_at(pos)  # else a mapping, damage or the end
            run = None
            if event_next:
                run = scan(window, pos, window.end, self.order, self.max_records, self._scratch)
            if run is not None and len(run):
                last_mapping = None
                end = run.end
                if end >= file.size:
                    self._hand_on(run)
                    pos = end
                    continue
                self._hand_on(run.take(slice(0, -1)))
                held = run.take(slice(-1, None)).copy()  # the next scan reuses the arrays
                last = int(held.offset[0])
                window.ensure(end, MAX_RECORD_BYTES, keep_from=last)
                if self._sound_event_at(end):  # the run stopped at the window's end
                    pos = last
                    continue
                pos = end
            resume = self._after_run(pos, held, last_mapping)
            if resume is None:
                break
            pos, last_mapping = resume
        self._flush()
        self.window.before_load = None
        return self.walk

    def _after_run(
        self, pos: int, held: Records | None, last_mapping: Mapping | None
    ) -> tuple[int, Mapping | None] | None:
        """Read what stopped a run at ``pos``: a mapping record, damage or the file's end.

        Returns where to go on (and the mapping just read), or None at the end of the file.
        """
        left = self.file.size - pos
        rel = pos - self.window.base
        data = self.window.view
        if left <= 0:
            self._hand_on(held)
            return None
        needed = 8 if left < 8 else 0
        if not needed:
            (rtype,) = self._u64(data, rel)
            if rtype == RECORD_EVENT:
                needed = EVENT_HEADER_BYTES if left < EVENT_HEADER_BYTES else 0
            elif rtype == RECORD_MAPPING:
                needed = MAPPING_HEADER_BYTES if left < MAPPING_HEADER_BYTES else 0
        if needed:
            self._hand_on(held)
            self._cut(pos, needed)
            return None
        reason: str
        too_long = 0  # a record that would run past the end of the file: its size
        if rtype == RECORD_EVENT:
            _t, _eid, _ts, length, _pid = self._event_header(data, rel)
            if not MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH:
                reason = f"event length {length} out of range"
            elif 8 + length > left:
                too_long = 8 + length
                reason = f"record of {too_long} bytes runs past the end"
            else:  # sound after all (the window moved under the run): read on from here
                self._hand_on(held)
                return pos, None
        elif rtype == RECORD_MAPPING:
            _t, eid, name_len = self._mapping_header(data, rel)
            size = MAPPING_HEADER_BYTES + name_len
            if not 0 < name_len <= MAX_NAME_BYTES:
                reason = f"event name length {name_len} out of range"
            elif size > left:
                too_long = size
                reason = f"record of {too_long} bytes runs past the end"
            else:
                raw = bytes(data[rel + MAPPING_HEADER_BYTES : rel + size])
                if is_event_name(raw):
                    self._hand_on(held)
                    mapping = self._add_mapping(pos, eid, raw.decode("ascii"), size)
                    return self._more_mappings(mapping)
                reason = "the mapping's name is not an event name"
        else:
            reason = f"unknown record type {rtype:#x}"
        return self._damaged(pos, reason, too_long, held, last_mapping)

    def _more_mappings(self, mapping: Mapping) -> tuple[int, Mapping]:
        """Read the sound mapping records that follow ``mapping`` in the window (QEMU writes
        thousands back to back); return where they end and the last one."""
        view, base, end = self.window.view, self.window.base, self.window.end
        header = self._mapping_header
        pos = mapping.end
        while end - pos >= MAPPING_HEADER_BYTES:
            rel = pos - base
            rtype, eid, name_len = header(view, rel)
            size = MAPPING_HEADER_BYTES + name_len
            if rtype != RECORD_MAPPING or not 0 < name_len <= MAX_NAME_BYTES or pos + size > end:
                break
            raw = bytes(view[rel + MAPPING_HEADER_BYTES : rel + size])
            if not is_event_name(raw):
                break
            mapping = self._add_mapping(pos, eid, raw.decode("ascii"), size)
            pos += size
        return pos, mapping

    def _damaged(
        self,
        pos: int,
        reason: str,
        too_long: int,
        held: Records | None,
        last_mapping: Mapping | None,
    ) -> tuple[int, Mapping | None] | None:
        """Skip damage at ``pos``; return where sound records start again (None: file end)."""
        if held is not None:
            # Searched from the record before: no sound start lies between it and the damage
            # (which is none), so the answer is also the first after the damage.
            previous = int(held.offset[0])
            resume = self.resync.next_sound(previous)
            if resume < pos:  # sound records start inside the record before: it is the damaged one
                self._skip(previous, resume, "its length runs into the records after it")
                return resume, None
            self._hand_on(held)
        else:
            resume = self.resync.next_sound(pos)
        if too_long and resume >= self.file.size:
            self._cut(pos, too_long)  # the last record, cut short by the end of the file
            return None
        if (
            last_mapping is not None
            and last_mapping.end == pos
            # Name bytes that run into the end of the file prove nothing: only a sound record
            # right after them shows the name went on (trailing junk may look like a name).
            and resume < self.file.size
            and resume - pos <= MAX_NAME_BYTES
            and NAME_BYTES[self.resync.bytes_at(pos, resume - pos)].all()
        ):
            # The mapping's name goes on past its length: that length is the damaged field.
            self.walk.mappings.remove(last_mapping)
            self._skip(last_mapping.offset, resume, "its name length cuts its name short")
            return resume, None
        self._skip(pos, resume, reason)
        return resume, None

    def _hand_on(self, records: Records | None) -> None:
        """Pass sound records on to be decoded, and remember where they are."""
        if records is None or not len(records):
            return
        walk = self.walk
        first, end = int(records.offset[0]), records.end
        if walk.segments and walk.segments[-1].end == first:
            walk.segments[-1].end = end
            walk.segments[-1].count += len(records)
        else:
            walk.segments.append(Segment(first, end, len(records)))
        walk.records += len(records)
        if self.sink is not None and not walk.late_mappings:
            kept = self.sink.keep(records, walk.mappings)
            if len(kept):
                self._pending.append(kept)
                self._pending_count += len(kept)
            if self._pending_count >= self.max_records:
                self._flush()

    def _flush(self) -> None:
        """Decode the records pending, while their bytes are in the window."""
        if self._pending and self.sink is not None and not self.walk.late_mappings:
            records = self._pending[0] if len(self._pending) == 1 else Records.concat(self._pending)
            self.sink.decode(records, self.window, self.walk.mappings)
        self._pending = []
        self._pending_count = 0

    def _add_mapping(self, pos: int, eid: int, name: str, size: int) -> Mapping:
        walk = self.walk
        if walk.records != self._records_at_mapping:  # event records since the last mapping
            self._block += 1
            self._records_at_mapping = walk.records
        if walk.records:
            walk.late_mappings = True
        mapping = Mapping(pos, eid, name, self._block, size)
        walk.mappings.append(mapping)
        return mapping

    def _skip(self, start: int, resume: int, reason: str) -> None:
        self.walk.damage.append(Damage(start, resume - start, reason))

    def _cut(self, pos: int, needed: int) -> None:
        self.walk.cut = Cut(pos, self.file.size - pos, needed)

    def _sound_event_at(self, pos: int) -> bool:
        """Whether a sound event record, wholly inside the file, starts at ``pos``."""
        if self.file.size - pos < EVENT_HEADER_BYTES or not self.window.holds(pos, 32):
            return False
        at = pos - self.window.base
        rtype, _eid, _ts, length, _pid = self._event_header(self.window.view, at)
        return bool(
            rtype == RECORD_EVENT
            and MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH
            and pos + 8 + length <= self.file.size
        )


def replay(
    file: TraceFile, window: Window, walk: Walk, order: str, sink: Sink, max_records: int
) -> list[Damage]:
    """Hand on the records of ``walk`` again, now that every mapping is known.

    Returns the stretches that no longer hold the sound records the walk found there (the
    file changed, or shrank, since).
    """
    changed: list[Damage] = []
    scratch = Scratch()
    for segment in walk.segments:
        pos = segment.start
        while pos < segment.end:
            window.ensure(pos, min(segment.end - pos, MAX_RECORD_BYTES))
            if pos >= file.size:
                return changed  # the file shrank: the caller marks where
            stop = min(window.end, segment.end)
            run = scan(window, pos, stop, order, max_records, scratch) if pos < stop else None
            if run is None or not len(run):
                changed.append(Damage(pos, segment.end - pos, "changed while being read"))
                break
            sink.decode(sink.keep(run, walk.mappings), window, walk.mappings)
            pos = run.end
    return changed
