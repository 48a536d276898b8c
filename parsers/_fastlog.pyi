"""The C scanner behind ``qtrace.parsers.log_fast`` (parsers/_fastlog.c)."""

from typing import Any

def scan(
    fd: int, size: int, split_bytes: int = ..., model: bool = ..., /
) -> dict[str, Any] | None: ...
