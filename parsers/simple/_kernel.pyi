"""The C kernel of qtrace.parsers.simple (parsers/simple/_kernel.c)."""

from typing import Any

from _typeshed import ReadableBuffer, WriteableBuffer

def scan(
    buffer: ReadableBuffer,
    base: int,
    start: int,
    stop: int,
    big_endian: bool,
    capacity: int,
    offset: WriteableBuffer,
    eid: WriteableBuffer,
    ts: WriteableBuffer,
    length: WriteableBuffer,
    pid: WriteableBuffer,
    a0: WriteableBuffer,
    a1: WriteableBuffer,
    /,
) -> int: ...
def render(
    buffer: ReadableBuffer,
    offsets: Any,
    lengths: Any,
    strings: bytes,
    names: tuple[str, ...],
    big_endian: bool,
    codes: WriteableBuffer,
    ok: WriteableBuffer,
    /,
) -> list[str]: ...
