"""The C scanner behind ``qtrace.parsers.log_fast`` (parsers/_fastlog.c)."""

from typing import Any

from _typeshed import ReadableBuffer

def scan(
    buffer: ReadableBuffer, split_bytes: int = ..., release: bool = ..., /
) -> dict[str, Any] | None: ...
