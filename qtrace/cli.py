"""The ``qtrace`` command line: a thin Typer layer over the library.

Each command parses its options, calls the library, and chooses how to print. Exit codes:
0 clean, 1 findings that pass --fail-on, 2 usage, 3 unreadable or invalid input.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from qtrace import __version__
from qtrace.errors import EXIT_INPUT, QtraceError, UsageError
from qtrace.events import EventSelection, Trace
from qtrace.export import write_events
from qtrace.ingest import read_trace

EXIT_CODES_HELP = (
    "Exit codes: 0 clean; 1 findings that pass --fail-on; 2 usage error; "
    "3 unreadable or invalid input."
)

app = typer.Typer(
    name="qtrace",
    help="Analyze QEMU FlatView trace events: lifetimes, overlaps, leaks, dashboards.\n\n"
    + EXIT_CODES_HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class InputFormat(StrEnum):
    log = "log"
    simple = "simple"


class EventsFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


TracesArg = Annotated[
    list[str],
    typer.Argument(help="Trace files of one run ('-' for standard input).", show_default=False),
]
InputFormatOpt = Annotated[
    InputFormat | None,
    typer.Option("--input-format", help="Input format; detected from content when omitted."),
]
TraceEventsOpt = Annotated[
    Path | None,
    typer.Option(
        "--trace-events",
        help="The build's trace-events-all, to decode non-FlatView simple-backend events "
        "(default: /usr/share/qemu/trace-events-all when present).",
    ),
]


def _fail(error: QtraceError) -> NoReturn:
    stderr.print(f"qtrace: error: {error}", markup=False)
    raise typer.Exit(error.exit_code)


def _report_reading(trace: Trace) -> None:
    """One warning line per kind of damage, then a count of what was skipped."""
    for warning in trace.warnings:
        stderr.print(f"qtrace: warning: {warning}", markup=False)


def load(
    traces: list[str],
    *,
    events: str | EventSelection | None,
    input_format: InputFormat | None,
    trace_events: Path | None,
) -> Trace:
    """Read the inputs of one command, printing reading warnings; errors end the command."""
    try:
        trace = read_trace(
            traces,
            events=events,
            input_format=input_format.value if input_format else None,
            trace_events=trace_events,
        )
    except QtraceError as error:
        _fail(error)
    _report_reading(trace)
    return trace


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qtrace {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Analyze QEMU FlatView trace events."""


@app.command()
def events(
    traces: TracesArg,
    fmt: Annotated[
        EventsFormat, typer.Option("--format", "-f", help="Output format.")
    ] = EventsFormat.csv,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    all_events: Annotated[
        bool, typer.Option("--all", help="Every trace event, not only FlatView ones.")
    ] = False,
    pattern: Annotated[
        str | None,
        typer.Option("--events", help="Events to keep, as QEMU -trace globs: 'flatview_*,pci_*'."),
    ] = None,
    input_format: InputFormatOpt = None,
    trace_events: TraceEventsOpt = None,
) -> None:
    """Write the canonical events table (one row per trace event, in trace order).

    Several files of one run (e.g. [bold]-d tid -D log.%d[/bold]) are merged by timestamp.
    In csv and jsonl, view and root print as 0x hex as QEMU prints them.
    """
    if all_events and pattern is not None:
        _fail(UsageError("--all and --events exclude each other"))
    selection = "*" if all_events else pattern
    trace = load(traces, events=selection, input_format=input_format, trace_events=trace_events)
    try:
        write_events(trace.events, fmt.value, output)
    except QtraceError as error:
        _fail(error)


def main() -> None:
    """Console entry point: run the app, turning stray OS errors into one-line messages."""
    try:
        app()
    except BrokenPipeError:
        # A pager or `head` closed the pipe: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as error:
        stderr.print(f"qtrace: error: {error}", markup=False)
        sys.exit(EXIT_INPUT)
