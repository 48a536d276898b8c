"""The optional C kernel (``_kernel.c``): record scanning and argument rendering in one pass.

Without a compiler the package installs without it and the reader takes its numpy paths,
the reference the kernel must match exactly (the tests read every trace both ways).
``QTRACE_NO_SIMPLE_KERNEL=1`` switches it off.
"""

from __future__ import annotations

import os
from types import ModuleType

_compiled: ModuleType | None
try:
    from qtrace.parsers.simple import _kernel as _compiled
except ImportError:  # built without a compiler
    _compiled = None

NO_KERNEL = "QTRACE_NO_SIMPLE_KERNEL"


def get() -> ModuleType | None:
    """The kernel module, or None when it is not built or switched off."""
    if _compiled is None or os.environ.get(NO_KERNEL, "") == "1":
        return None
    return _compiled


def available() -> bool:
    """True when the kernel is built and not switched off by ``QTRACE_NO_SIMPLE_KERNEL=1``."""
    return get() is not None
