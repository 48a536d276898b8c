"""The ``qtrace names`` command, for ``qtrace/cli.py`` to register:

    app.command("names")(names_command)

It parses options and calls ``qtrace.names.gdb.resolve_names``; the ``--names FILE`` option
the other commands share is here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qtrace.messages import say

if TYPE_CHECKING:
    from qtrace.names import Names

NamesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--names",
        help="A names file (TIME POINTER NAME [alias of POINTER NAME] [label], as `qtrace "
        "names` writes): roots are shown by name. Repeatable; merged with the names the "
        "trace carries (memory_region_finalize, memory_region_ops_*).",
    ),
]


def load_names(paths: list[Path] | None) -> Names | None:
    """The merged names files of a command (None without any); a bad file ends the command."""
    if not paths:
        return None
    from qtrace.names import merge_names, read_names  # polars: only when a file is given

    return merge_names(read_names(path) for path in paths)


def names_command(
    pid: Annotated[int, typer.Option("--pid", help="The running QEMU's process id.")],
    trace: Annotated[
        Path, typer.Option("--trace", help="Its trace (log or simple backend), read so far.")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="The names file to write ('-': stdout).")
    ] = "-",
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            min=0.1,
            help="Repeat every SECONDS while QEMU runs, adding a line for each pointer that is "
            "new or names another region (Ctrl-C stops; the file is complete).",
        ),
    ] = None,
) -> None:
    """Name the root pointers of a running QEMU's trace, reading its memory with gdb.

    Attaches gdb (batch mode) for a snapshot of a fraction of a second: MemoryRegion::name of
    every root pointer of the trace's last run, and for an alias the aliased region's pointer
    and name. Uses QEMU's debug info when gdb has it, else a layout probe (docs/names.md).
    The file is what --names reads.

    Exit codes: 0 written; 2 PID is no QEMU; 3 gdb missing or unable to attach, trace
    unreadable, or none of its roots is a region of that process.
    """
    from qtrace.names.gdb import resolve_names

    try:
        done = resolve_names(pid, trace, output, every=every)
    except KeyboardInterrupt:
        say("stopped")
        return
    where = "stdout" if output == "-" else output
    say(f"{len(done.named)} root(s) named in {done.snapshots} snapshot(s), written to {where}")


__all__ = ["NamesOpt", "load_names", "names_command"]
