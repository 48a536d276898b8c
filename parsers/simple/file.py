"""The trace file's bytes, read a bounded window at a time with ``pread``.

Never a memory map: a mapped file that shrinks while it is read (logrotate's copytruncate, a
QEMU restarted on the same file) kills the process with SIGBUS. A read that comes up short
instead moves the file's end to where the bytes stop, and the reader says so.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from qtrace.errors import InputError

Bytes = npt.NDArray[np.uint8]


class TraceFile:
    """An open trace file: its size, and reads into caller-owned buffers.

    ``size`` is where the reader takes the file to end: the size at open, or where a read
    found it ending when it shrank while it was read (``shrunk_to`` is then the size it
    had). Bytes appended later are not read.
    """

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self.size = self.opened_size = self.shrunk_to = os.fstat(self._fd).st_size
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        os.close(self._fd)

    @property
    def shrunk(self) -> bool:
        return self.size < self.opened_size

    def read_into(self, buffer: memoryview, start: int) -> int:
        """Fill ``buffer`` with the bytes from ``start`` on; return how many were read.

        Fewer bytes than the buffer holds only at the file's end; a read that ends before the
        size seen so far means the file shrank, and ``size`` moves there.
        """
        want = max(0, min(len(buffer), self.size - start))
        got = 0
        try:
            while got < want:
                count = os.preadv(self._fd, [buffer[got:want]], start + got)
                if count == 0:
                    break
                got += count
        except OSError as exc:
            raise InputError(
                f"{self.name}: cannot read at offset {start + got} ({exc.strerror or exc})"
            ) from None
        if got < want:
            self.size = start + got
            self.shrunk_to = min(self.size, os.fstat(self._fd).st_size)
        return got


class Window:
    """A stretch of the file in memory: ``data[i]`` is the file's byte ``base + i``.

    Reads are bounded by the window's capacity, so memory does not grow with the file.
    """

    def __init__(self, file: TraceFile, capacity: int) -> None:
        self.file = file
        # No larger than the file: a small file must not cost a large buffer.
        self._buffer = _memory(min(capacity, file.size))
        self.base = 0
        self.length = 0
        self.data: Bytes = np.frombuffer(self._buffer, np.uint8, count=0)
        self.view = memoryview(self._buffer)[:0]  # the same bytes, for struct
        # Called before the window reads other bytes (whoever still needs these goes first).
        self.before_load: Callable[[], None] | None = None
        self.reads = 0

    @property
    def end(self) -> int:
        """The file offset just past the bytes held."""
        return self.base + self.length

    @property
    def at_file_end(self) -> bool:
        return self.end >= self.file.size

    def holds(self, start: int, count: int) -> bool:
        return self.base <= start and start + count <= self.end

    def ensure(self, start: int, count: int, keep_from: int | None = None) -> bool:
        """Hold the bytes ``[start, start + count)`` (fewer where the file ends first), reading
        from ``keep_from`` (or ``start``) when they are not all held; False when the file ends
        before ``start``."""
        origin = start if keep_from is None else keep_from
        if not (self.holds(origin, 0) and self.holds(start, min(count, self.file.size - start))):
            self.load(origin, start + count)
        return start <= self.file.size and self.holds(start, min(count, self.file.size - start))

    def load(self, start: int, at_least_to: int = 0, limit: int | None = None) -> None:
        """Read the file from ``start``: up to ``limit`` bytes (default: the capacity), and at
        least up to offset ``at_least_to`` (the capacity grows for that)."""
        if self.before_load is not None:
            self.before_load()
        need = at_least_to - start
        if need > len(self._buffer):
            self._buffer = _memory(need)
        count = len(self._buffer) if limit is None else max(need, min(limit, len(self._buffer)))
        self.base = start
        self.length = self.file.read_into(memoryview(self._buffer)[:count], start)
        self.data = np.frombuffer(self._buffer, np.uint8, count=self.length)
        self.view = memoryview(self._buffer)[: self.length]
        self.reads += 1

    def buffer(self) -> memoryview:
        """The bytes held, as a read-only buffer."""
        return self.view.toreadonly()


def _memory(size: int) -> mmap.mmap:
    """``size`` bytes of fresh anonymous memory (a map of no file: it cannot shrink under the
    reader). Unlike a bytearray it is not written to before use, so pages the reads never
    reach cost nothing."""
    return mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
