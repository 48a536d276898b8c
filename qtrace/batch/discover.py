"""Turn the command's INPUT arguments into artifacts: files, directories, globs and archives.

Directories are walked without following symbolic links (a link inside an artifact directory
could point anywhere on the runner); files named on the command line are the user's choice
and are read as given. Archives found anywhere become one artifact per member.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from qtrace.batch.archive import archive_kind, tar_members, zip_members
from qtrace.batch.artifact import ARCHIVE_SEPARATOR, Artifact, Discovery, Part, Unreadable
from qtrace.errors import UsageError

_GLOB_CHARS = re.compile(r"[*?\[]")
# Files a directory walk passes over: artifact folders also hold docs, scripts and reports,
# which are no traces and must not turn a clean batch into exit 3. Named on the command
# line, such a file is still read.
NOT_TRACE_SUFFIXES = frozenset(
    [
        ".md",
        ".rst",
        ".py",
        ".sh",
        ".html",
        ".htm",
        ".css",
        ".js",
        ".json",
        ".xml",
        ".parquet",
        ".png",
        ".jpg",
        ".jpeg",
        ".svg",
        ".pdf",
        ".names",  # qtrace names files, read beside their trace
    ]
)


def _is_walked_artifact(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() not in NOT_TRACE_SUFFIXES


def _walk(directory: Path, discovery: Discovery, skip: Path | None) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        base = Path(root)
        # A report written inside the walked tree (`qtrace batch . --out report`) is no input.
        dirs[:] = sorted(d for d in dirs if skip is None or (base / d).resolve() != skip)
        for name in [*sorted(files), *(d for d in dirs if (base / d).is_symlink())]:
            path = base / name
            if path.is_symlink():
                discovery.unreadable.append(
                    Unreadable(str(path), "symbolic link inside an input directory: not followed")
                )
            elif path.is_file() and _is_walked_artifact(path):
                found.append(path)
    return found


def _expand(inputs: list[str], discovery: Discovery, skip: Path | None) -> list[Path]:
    files: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files.extend(_walk(path, discovery, skip))
        elif path.exists():
            files.append(path)
        elif _GLOB_CHARS.search(given):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                discovery.unreadable.append(Unreadable(given, "no file matches this pattern"))
            for match in matches:
                matched = Path(match)
                files.extend(_walk(matched, discovery, skip) if matched.is_dir() else [matched])
        else:
            discovery.unreadable.append(Unreadable(given, "no such file or directory"))
    unique: dict[str, Path] = {}
    for file in files:
        unique.setdefault(os.path.realpath(file), file)  # the same file named twice runs once
    return list(unique.values())


def _parts_of(path: Path, spill_dir: Path, limit_bytes: int, discovery: Discovery) -> list[Part]:
    """The path as one part, or its archive members as parts; problems become records."""
    try:
        kind = archive_kind(path)
    except OSError as exc:
        discovery.unreadable.append(Unreadable(str(path), f"cannot read ({exc.strerror or exc})"))
        return []
    if kind is None:
        return [Part(str(path), str(path))]
    parts: list[Part] = []
    try:
        members = zip_members(path) if kind == "zip" else tar_members(path, spill_dir, limit_bytes)
        for member in members:
            name = f"{path}{ARCHIVE_SEPARATOR}{member.name}"
            if member.error is not None:
                discovery.unreadable.append(Unreadable(name, member.error))
            elif member.copied_to is not None:
                parts.append(Part(name, str(member.copied_to)))
            else:
                parts.append(Part(name, str(path), zip_index=member.zip_index))
    except Exception as exc:
        # A damaged archive still yields the members before the damage; say where it stopped.
        reason = str(exc) or type(exc).__name__
        discovery.unreadable.append(
            Unreadable(str(path), f"damaged {kind} archive after {len(parts)} members: {reason}")
        )
    return parts


def group_key(name: str, pattern: re.Pattern[str]) -> str:
    """The run a part belongs to under ``--group-by``.

    With a capture group, the run is what the first group captured (``(.*)/log\\.\\d+``); without
    one, the run is the name with the match removed (``\\.\\d+$`` joins ``log.123`` and
    ``log.456`` as ``log``). A name the pattern does not match is a run of its own.

    Examples
    --------
    >>> group_key("ci/log.4242", re.compile(r"\\.\\d+$"))
    'ci/log'
    >>> group_key("ci/log.4242", re.compile(r"(.*)/log\\.\\d+$"))
    'ci'
    """
    match = pattern.search(name)
    if match is None:
        return name
    if pattern.groups:
        return match.group(1) or name
    return name[: match.start()] + name[match.end() :]


def compile_group_by(text: str) -> re.Pattern[str]:
    """The ``--group-by`` regex, or a usage error saying what is wrong with it."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"--group-by: not a valid regular expression ({exc})") from None


def discover(
    inputs: list[str],
    spill_dir: Path,
    *,
    limit_bytes: int,
    group_by: str | None = None,
    skip_dir: Path | None = None,
) -> Discovery:
    """Find every artifact the inputs name, in a stable order.

    Parameters
    ----------
    inputs
        Files, directories (walked recursively) and globs (``**`` allowed).
    spill_dir
        Where tar members are copied, under names qtrace chooses.
    limit_bytes
        The per-artifact input limit; a larger tar member becomes an unreadable record.
    group_by
        A regex joining per-thread files of one run into one artifact (see ``group_key``).
    skip_dir
        A directory never walked into (the batch's own output directory).
    """
    pattern = compile_group_by(group_by) if group_by is not None else None
    discovery = Discovery()
    parts: list[Part] = []
    skip = skip_dir.resolve() if skip_dir is not None else None
    for path in _expand(inputs, discovery, skip):
        parts.extend(_parts_of(path, spill_dir, limit_bytes, discovery))
    if pattern is None:
        discovery.artifacts = [Artifact(part.name, (part,)) for part in parts]
        return discovery
    runs: dict[str, list[Part]] = {}
    for part in parts:
        runs.setdefault(group_key(part.name, pattern), []).append(part)
    discovery.artifacts = [Artifact(name, tuple(members)) for name, members in runs.items()]
    return discovery
