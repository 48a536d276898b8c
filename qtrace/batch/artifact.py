"""What one batch task reads: an artifact made of one or more parts, each a file or a member.

These are plain, picklable records: they travel to worker processes and Dask workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# 2 GiB: far above any real FlatView trace of one CI run (a busy hour of QEMU logs a few
# hundred MB), far below what would exhaust a CI runner's disk or memory.
DEFAULT_MAX_INPUT_BYTES = 2 * 1024**3

ARCHIVE_SEPARATOR = "!"


@dataclass(frozen=True)
class Part:
    """One file of an artifact.

    ``name`` is what users see (``ci/run1/trace.log`` or ``logs.zip!run1/trace.log``);
    ``path`` is the local file holding the bytes (the input itself, a zip archive, or a tar
    member copied to a file qtrace named); ``zip_index`` picks a member of a zip ``path``.
    """

    name: str
    path: str
    zip_index: int | None = None


@dataclass(frozen=True)
class Artifact:
    """One run to analyze: usually one part; several when ``--group-by`` joined them."""

    name: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Unreadable:
    """An input found but never handed to a worker, with why."""

    name: str
    error: str


@dataclass
class Discovery:
    """Everything the inputs named: artifacts to analyze and inputs already known bad."""

    artifacts: list[Artifact] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM_CHARS = 80


def file_stem(index: int, name: str) -> str:
    """A file name qtrace chose for artifact number ``index``: unique, safe on every filesystem.

    Nothing of the artifact's name survives but letters, digits, ``.``, ``_`` and ``-``; the
    index prefix keeps names unique however the rest collides.

    Examples
    --------
    >>> file_stem(7, "../../etc/passwd")
    '00007-etc_passwd'
    """
    safe = _UNSAFE_CHARS.sub("_", name).strip("._-")[-_MAX_STEM_CHARS:].lstrip("._-")
    return f"{index:05d}-{safe or 'artifact'}"
