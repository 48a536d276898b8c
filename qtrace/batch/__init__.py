"""Batch analysis of CI trace artifacts: ``qtrace batch`` as a library.

``run_batch`` reads files, directories, globs and archive members, analyzes each artifact in
reused worker processes (or on a Dask cluster), and writes the CI outputs.
"""

from qtrace.batch.artifact import DEFAULT_MAX_INPUT_BYTES
from qtrace.batch.gating import DEFAULT_FAIL_ON
from qtrace.batch.runner import BatchResult, run_batch

__all__ = ["DEFAULT_FAIL_ON", "DEFAULT_MAX_INPUT_BYTES", "BatchResult", "run_batch"]
