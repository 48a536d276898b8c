"""Batch analysis of CI trace artifacts: ``qtrace batch`` as a library.

``run_batch`` reads files, directories, globs and archive members, analyzes each artifact in
reused worker processes (or on a Dask cluster), and writes the CI outputs. The names below
load on first use: the runner brings the dashboards (plotly), which a command line that only
registers ``qtrace batch`` must not pay for.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_FAIL_ON": "qtrace.findings",
    "DEFAULT_MAX_INPUT_BYTES": "qtrace.batch.artifact",
    "BatchResult": "qtrace.batch.runner",
    "run_batch": "qtrace.batch.runner",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = ["DEFAULT_FAIL_ON", "DEFAULT_MAX_INPUT_BYTES", "BatchResult", "run_batch"]
