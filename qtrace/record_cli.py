"""The ``qtrace record`` command, for ``qtrace/cli.py`` to register:

    app.command("record")(record_command)

It parses options and calls ``qtrace.record``: run QEMU, then write and print the report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qtrace.errors import QtraceError
from qtrace.messages import say


def _live_line(text: str) -> None:
    # One line, rewritten in place; cleared before anything else is printed.
    sys.stdout.write("\r\x1b[K" + text)
    sys.stdout.flush()


def record_command(
    qemu: Annotated[
        list[str],
        typer.Argument(
            help="The QEMU command line, after --: qtrace record -- qemu-system-x86_64 ...",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory of recordings; each QEMU gets DIR/qemu-PID/."),
    ] = Path("qtrace-record"),
    names: Annotated[
        bool,
        typer.Option(
            "--names/--no-names",
            help="Name the roots with gdb while QEMU runs (qtrace names), for a named report.",
        ),
    ] = False,
    every: Annotated[
        float,
        typer.Option(
            "--every", min=0.5, help="With --names: seconds between snapshots of the names."
        ),
    ] = 5.0,
    dashboard: Annotated[
        bool, typer.Option("--dashboard/--no-dashboard", help="Also write dashboard.html.")
    ] = True,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print no report (files are still written): under libqtest, stdout is the "
            "test's TAP stream.",
        ),
    ] = False,
    wrapper: Annotated[
        Path | None,
        typer.Option(
            "--wrapper",
            help="Write an executable script FILE that records every QEMU started through it "
            "(for QTEST_QEMU_BINARY; name it like the binary, e.g. qemu-system-x86_64), "
            "then exit.",
        ),
    ] = None,
) -> None:
    """Run QEMU with FlatView tracing and analyze the run when it exits.

    Adds [bold]-msg timestamp=on -trace flatview_* -trace memory_region_finalize*
    -D DIR/qemu-PID/trace.log[/bold] to QEMU's arguments, forwards SIGINT and SIGTERM, and
    exits with QEMU's status (128 + signal). Then writes report.json and dashboard.html
    beside the trace and prints the report. While QEMU runs, a terminal shows what the
    trace pins, about once a second.

    As a libqtest wrapper: QTEST_QEMU_BINARY="qtrace record -q --out DIR --
    /path/qemu-system-x86_64", or a script from --wrapper.
    """
    from qtrace.record import run_qemu, write_outputs, write_wrapper  # the library, when it runs

    if wrapper is not None:
        options = ["--quiet", "--out", str(out.resolve())]
        options += ["--names", "--every", str(every)] if names else []
        options += [] if dashboard else ["--no-dashboard"]
        write_wrapper(wrapper, qemu, options)
        say(f"wrapper written to {wrapper}: QTEST_QEMU_BINARY={wrapper.resolve()}")
        return
    live = _live_line if sys.stdout.isatty() and not quiet else None
    recording = run_qemu(qemu, out, names=names, every=every, live=live, warn=say)
    if live is not None:
        _live_line("")
    if not recording.trace.is_file() or recording.trace.stat().st_size == 0:
        say(f"QEMU {recording.pid} exited with status {recording.status} and traced nothing")
        raise typer.Exit(recording.status)
    try:
        written = write_outputs(recording, dashboard=dashboard, text=None if quiet else sys.stdout)
    except QtraceError as error:
        say(f"warning: {recording.trace}: {error}")
    else:
        say(
            f"QEMU {recording.pid} exited with status {recording.status}; wrote "
            + ", ".join(str(p) for p in [recording.trace, *written])
        )
    raise typer.Exit(recording.status)


__all__ = ["record_command"]
