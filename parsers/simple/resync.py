"""Resynchronisation: after damage, the first offset where a chain of sound records starts.

Candidates are offsets where a type word of 0 or 1 starts, followed by a plausible length
and a known event id (an event record) or by the start of an event name (a mapping record);
each is then followed for ``RESYNC_CHAIN`` records. Mapping records count as much as event
records: after damage among the mappings (which name the event ids), the walk goes on at the
next mapping, so that a damaged mapping costs that mapping and not the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from qtrace.parsers.simple.file import TraceFile, Window
from qtrace.parsers.simple.gather import Fields
from qtrace.parsers.simple.layout import (
    DROPPED_EVENT_ID,
    EVENT_HEADER_BYTES,
    MAPPING_HEADER_BYTES,
    MAX_EVENT_LENGTH,
    MAX_NAME_BYTES,
    MIN_EVENT_LENGTH,
    NAME_START,
    RECORD_EVENT,
    RECORD_MAPPING,
    is_event_name,
)
from qtrace.parsers.simple.mappings import Mapping

RESYNC_CHAIN = 3  # sound records that must follow a resync candidate for it to be believed
SEARCH_FIRST_BYTES = 512  # the first stretch searched for a resync point; later ones grow
SEARCH_MAX_BYTES = 1 << 20  # bounds the search's temporaries (several arrays of this length)
FEW_CANDIDATES = 32  # up to this many are tested one by one


class Resync:
    """Finds where sound records start again in one file (``mappings``: those read so far)."""

    def __init__(self, file: TraceFile, order: str, mappings: list[Mapping]) -> None:
        self.file = file
        self.order = order
        self.mappings = mappings
        self.search = Window(file, SEARCH_MAX_BYTES)
        self._u64 = struct.Struct(order + "Q").unpack_from
        self._u32 = struct.Struct(order + "I").unpack_from
        self._event_header = struct.Struct(order + "QQQII").unpack_from
        self._mapping_header = struct.Struct(order + "QQI").unpack_from
        self._known: set[int] = set()
        self._known_sorted = np.zeros(0, np.uint64)
        self._known_count = -1

    def _known_ids(self) -> set[int]:
        """The ids mapped so far (and the dropped-events id), as a set and sorted."""
        if self._known_count != len(self.mappings):
            self._known = {m.eid for m in self.mappings} | {DROPPED_EVENT_ID}
            self._known_sorted = np.sort(np.fromiter(self._known, np.uint64, len(self._known)))
            self._known_count = len(self.mappings)
        return self._known

    def next_sound(self, off: int) -> int:
        """The first offset after ``off`` where a chain of sound records starts (or the end).

        Candidates (a type word of 0 or 1 followed by a plausible length, and a known event
        id or the start of an event name) are found in bulk; each is then followed for
        ``RESYNC_CHAIN`` records.
        """
        known = self._known_ids()
        start = off + 1
        span = SEARCH_FIRST_BYTES
        search = self.search
        while start < self.file.size:
            search.load(start, start + span, limit=span)
            final = search.at_file_end
            # Candidates whose filter fields lie in the stretch; the rest start the next one.
            limit = search.length if final else search.length - EVENT_HEADER_BYTES
            for candidate in self._candidates(search.data, limit):
                if self._plausible_from(start + candidate, known):
                    return int(start + candidate)
            if final:
                break
            start += max(limit, 1)
            span = min(span * 8, SEARCH_MAX_BYTES)
        return self.file.size

    def _candidates(self, data: npt.NDArray[np.uint8], limit: int) -> Iterator[int]:
        """Offsets below ``limit`` in ``data`` where a sound record may start, ascending.

        Cheap byte tests first (the type word's low byte is 1, or 0 with the start of a name
        where a mapping's name would be), so that stretches of zeros or noise cost a few
        passes; the candidates left are checked field by field.
        """
        count = min(limit, data.size - MAPPING_HEADER_BYTES - 1)
        if count <= 0:
            return
        low = data[:count] if self.order == "<" else data[7 : count + 7]
        maybe_event = low == RECORD_EVENT
        maybe_mapping = (low == RECORD_MAPPING) & NAME_START[data[20 : count + 20]]
        candidates = np.flatnonzero(maybe_event | maybe_mapping)
        if candidates.size <= FEW_CANDIDATES:  # one by one costs less than numpy's calls
            yield from (c for c in candidates.tolist() if self._candidate(data, c))
            return
        fields = Fields(data, self.order)
        candidates = candidates[fields.u64(candidates) <= RECORD_EVENT]  # the rest of the word
        events = candidates[maybe_event[candidates]]
        events = events[events + EVENT_HEADER_BYTES <= data.size]
        lengths = fields.u32(events + 24)
        events = events[(lengths >= MIN_EVENT_LENGTH) & (lengths <= MAX_EVENT_LENGTH)]
        eids = fields.u64(events + 8)
        known = self._known_sorted
        found = known[np.minimum(np.searchsorted(known, eids), known.size - 1)] == eids
        events = events[found]
        mappings = candidates[maybe_mapping[candidates]]
        name_lengths = fields.u32(mappings + 16)
        mappings = mappings[(name_lengths > 0) & (name_lengths <= MAX_NAME_BYTES)]
        yield from np.sort(np.concatenate((events, mappings))).tolist()

    def _candidate(self, data: npt.NDArray[np.uint8], at: int) -> bool:
        """``_candidates``' tests for one offset of ``data``."""
        view = data.data
        if at + 8 > data.size:
            return False
        (rtype,) = self._u64(view, at)
        if rtype == RECORD_EVENT:
            if at + EVENT_HEADER_BYTES > data.size:
                return False
            _t, eid, _ts, length, _pid = self._event_header(view, at)
            return MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH and eid in self._known
        if rtype == RECORD_MAPPING and at + MAPPING_HEADER_BYTES < data.size:
            (name_len,) = self._u32(view, at + 16)
            return bool(0 < name_len <= MAX_NAME_BYTES and NAME_START[data[at + 20]])
        return False

    def _plausible_from(self, pos: int, known: set[int]) -> bool:
        """Whether ``RESYNC_CHAIN`` sound records (or fewer, then the file's end) follow ``pos``."""
        size = self.file.size
        chained: set[int] = set()  # ids mapped inside the chain
        for index in range(RESYNC_CHAIN):
            left = size - pos
            if left == 0:
                return index > 0
            head = self.bytes_at(pos, min(left, EVENT_HEADER_BYTES)).tobytes()
            if len(head) < 8:
                return False
            (rtype,) = self._u64(head)
            if rtype == RECORD_EVENT and len(head) == EVENT_HEADER_BYTES:
                _t, eid, _ts, length, _pid = self._event_header(head)
                if not MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH:
                    return False
                if eid not in known and eid not in chained:
                    return False
                pos += 8 + length
            elif rtype == RECORD_MAPPING and len(head) >= MAPPING_HEADER_BYTES:
                _t, eid, name_len = self._mapping_header(head)
                if not 0 < name_len <= MAX_NAME_BYTES:
                    return False
                name = self.bytes_at(pos + MAPPING_HEADER_BYTES, name_len).tobytes()
                if len(name) < name_len or not is_event_name(name):
                    return False
                chained.add(eid)
                pos += MAPPING_HEADER_BYTES + name_len
            else:
                return False
            if pos > size:
                return False
        return True

    def bytes_at(self, pos: int, count: int) -> npt.NDArray[np.uint8]:
        """``count`` bytes of the file from ``pos`` (fewer at its end)."""
        search = self.search
        if search.holds(pos, count):
            return search.data[pos - search.base : pos - search.base + count]
        buffer = bytearray(max(count, 0))
        got = self.file.read_into(memoryview(buffer), pos)
        return np.frombuffer(buffer, np.uint8, count=got)
