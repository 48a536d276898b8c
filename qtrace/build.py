"""Which of qtrace's C extensions this install has.

Each is optional (pyproject.toml): a machine without a compiler still installs qtrace, and
every part then takes its plain Python, polars or numpy path, which gives the same tables,
only slower. Commands say so once, so that a slow run is never a mystery.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec
from pathlib import Path

# Each extension module and the part of qtrace it speeds up.
EXTENSIONS = {
    "qtrace._kernel": "the lifetime model (its Python walker is about 30x slower)",
    "qtrace.parsers._fastlog": "the log scanner",
    "qtrace.parsers.simple._kernel": "the simple-backend reader",
    "qtrace._format": "the pointer formatter",
}


def _built(module: str) -> bool:
    """Whether ``module``'s compiled file is installed, found without running the package
    that holds it (the simple reader's package loads numpy, which a log never needs)."""
    top, *folders, name = module.split(".")
    if not folders:
        return find_spec(module) is not None  # looks in qtrace's folder; loads nothing more
    # qtrace.parsers is its own folder (parsers/ in the source tree): find it, run none of it.
    package = find_spec(f"{top}.{folders[0]}")
    if package is None or not package.submodule_search_locations:
        return False
    folder = Path(next(iter(package.submodule_search_locations))).joinpath(*folders[1:])
    return any((folder / f"{name}{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def missing_extensions() -> list[str]:
    """The parts of qtrace whose C extension this install lacks."""
    return [part for module, part in EXTENSIONS.items() if not _built(module)]


def slow_install_note() -> str | None:
    """One line for a command to say when extensions are missing, else None."""
    missing = missing_extensions()
    if not missing:
        return None
    return (
        "built without a C compiler, so these run slower: "
        + "; ".join(missing)
        + " (reinstall where gcc is present for the fast paths)"
    )


def build_summary() -> str:
    """What ``qtrace --version`` says of the build."""
    missing = missing_extensions()
    if not missing:
        return "C extensions: all built"
    return f"C extensions: {len(EXTENSIONS) - len(missing)} of {len(EXTENSIONS)} built"


__all__ = ["EXTENSIONS", "build_summary", "missing_extensions", "slow_install_note"]
