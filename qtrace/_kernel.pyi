"""The lifetime model's sequential core (qtrace/_kernel.c), behind ``qtrace.kernel``."""

from typing import Any

def walk(
    code: object,
    view: object,
    root: object,
    ts: object,
    stream: object | None,
    finalize_rows: object,
    finalize_mr: object,
    *,
    n_streams: int,
    null_stream: int,
    destroy_traced: bool,
    release_at_rcu: bool,
    full: bool,
    tables_only: bool = False,
) -> dict[str, Any]: ...
