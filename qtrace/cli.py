"""The ``qtrace`` command line: a thin Typer layer over the library.

Each command parses its options, calls the library, and chooses how to print; the verdict,
the policy and the exit code are the library's (``qtrace.findings``). Exit codes: 0 clean,
1 findings that pass --fail-on, 2 usage, 3 unreadable or invalid input (or no FlatView event
read), 4 a bug in qtrace.
"""

from __future__ import annotations

import functools
import io
import os
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from qtrace import __version__
from qtrace.batch.cli import batch_command, diff_command
from qtrace.build import build_summary, slow_install_note
from qtrace.errors import EXIT_INPUT, EXIT_INTERNAL, QtraceError, UsageError
from qtrace.messages import fail, say
from qtrace.names_cli import NamesOpt, load_names, names_command
from qtrace.paths import display
from qtrace.record_cli import record_command

# The library (polars and what reads and analyses traces) loads when a command runs, inside
# it: ``qtrace --help``, ``--version`` and a mistyped option answer without it.
if TYPE_CHECKING:
    from rich.console import Console

    from qtrace.events import EventSelection, Trace
    from qtrace.findings import Findings
    from qtrace.model import Analysis
    from qtrace.names import Names

REPORT_WIDTH = 120  # columns of a text report written to a file or a pipe

EXIT_CODES_HELP = (
    "Exit codes: 0 clean; 1 findings that pass --fail-on; 2 usage error; "
    "3 unreadable or invalid input, or no FlatView event read; 4 a bug in qtrace."
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


Command = TypeVar("Command", bound=Callable[..., Any])


def command(name: str) -> Callable[[Command], Command]:
    """Register a command whose ``QtraceError`` ends it with one line and its exit code.

    The one place where library errors meet the command line: commands raise, never print
    errors themselves. A closed standard output (``| head``) ends the command quietly.
    """

    def register(function: Command) -> Command:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            note = slow_install_note()
            if note is not None:
                say(f"note: {note}")
            try:
                return function(*args, **kwargs)
            except QtraceError as error:
                fail(error)
            except BrokenPipeError:
                _silence_stdout()
                raise typer.Exit(0) from None

        app.command(name)(run)
        return function

    return register


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class InputFormat(StrEnum):
    log = "log"
    simple = "simple"
    journald = "journald"
    testlog = "testlog"


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


def _report_reading(trace: Trace) -> None:
    """One warning line per kind of damage; each says what was skipped and where."""
    for warning in trace.warnings:
        say(f"warning: {warning}")


def load(
    traces: list[str],
    *,
    events: str | EventSelection | None,
    input_format: InputFormat | None,
    trace_events: Path | None,
) -> Trace:
    """Read the inputs of one command, printing reading warnings."""
    from qtrace.ingest import read_trace

    trace = read_trace(
        traces,
        events=events,
        input_format=input_format.value if input_format else None,
        trace_events=trace_events,
    )
    _report_reading(trace)
    return trace


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qtrace {__version__}\n{build_summary()}")
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


@command("events")
def events(
    traces: TracesArg,
    fmt: Annotated[
        EventsFormat, typer.Option("--format", "-f", help="Output format.")
    ] = EventsFormat.csv,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    all_events: Annotated[
        bool, typer.Option("--all", help="Every trace event, not only those the model reads.")
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

    A FlatView event's arguments are its view and root, so its args column is empty.
    """
    from qtrace.export import write_events

    if all_events and pattern is not None:
        raise UsageError("--all and --events exclude each other")
    selection = "*" if all_events else pattern
    trace = load(traces, events=selection, input_format=input_format, trace_events=trace_events)
    write_events(trace.events, fmt.value, output)


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class RootRelease(StrEnum):
    destroy = "destroy"
    destroy_rcu = "destroy_rcu"


class PlotlyJs(StrEnum):
    inline = "inline"
    directory = "directory"


DEFAULT_MARKERS = "pci_update_mappings_*,memory_region_finalize"
TIME_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
WINDOW_BOUND = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>ns|us|ms|s)?$")
# Window bounds are seqs or ns from the start: past 2**62 they mean nothing in any trace (and
# would overflow the model's Int64 columns).
MAX_WINDOW_BOUND = 1 << 62

RootReleaseOpt = Annotated[
    RootRelease,
    typer.Option(
        "--root-release",
        help="When a view releases its root: at flatview_destroy (QEMU today) or, to replay "
        "the proposed early unref, at flatview_destroy_rcu.",
    ),
]


def _window_bound(text: str | None, flag: str) -> tuple[int | None, str | None]:
    """A --begin/--end value: ``1200`` is a seq; ``1.5ms`` (ns, us, ms, s) a time from the
    trace start. Returns the number (seq, or ns from the start) and its unit."""
    if text is None:
        return None, None
    match = WINDOW_BOUND.match(text.strip())
    if match is None:
        raise UsageError(f"{flag} {text!r}: give a seq (1200) or a time from the start (1.5ms)")
    unit = match["unit"]
    if unit is None:
        if "." in match["number"]:
            raise UsageError(f"{flag} {text!r}: a seq is a whole number; add a unit for a time")
        value = int(match["number"]) if len(match["number"]) <= 20 else MAX_WINDOW_BOUND + 1
    else:
        number = float(match["number"]) * TIME_UNITS_NS[unit]
        value = round(number) if number <= MAX_WINDOW_BOUND else MAX_WINDOW_BOUND + 1
    if value > MAX_WINDOW_BOUND:
        raise UsageError(f"{flag} {text!r}: out of range (at most {MAX_WINDOW_BOUND})")
    return value, "seq" if unit is None else "ns"


def _analyze(
    trace: Trace,
    release: RootRelease,
    begin: str | None,
    end: str | None,
    names: Names | None = None,
) -> Analysis:
    from qtrace.model import analyze

    begin_value, begin_unit = _window_bound(begin, "--begin")
    end_value, end_unit = _window_bound(end, "--end")
    units = {u for u in (begin_unit, end_unit) if u is not None}
    if len(units) > 1:
        raise UsageError("--begin and --end must both be seqs or both be times")
    unit: Literal["seq", "ns"] = "ns" if units == {"ns"} else "seq"
    return analyze(
        trace,
        root_release=release.value,
        begin=begin_value,
        end=end_value,
        window_unit=unit,
        window_from_start=unit == "ns",
        names=names,
    )


def _write_dashboard(
    analysis: Analysis,
    found: Findings,
    trace: Trace,
    path: Path,
    *,
    plotlyjs: PlotlyJs,
    replay: bool,
    markers: str,
    names: Names | None = None,
) -> None:
    from qtrace.dashboards import marker_events, write_dashboard
    from qtrace.model import analyze

    write_dashboard(
        analysis,
        path,
        findings=found,
        plotlyjs=plotlyjs.value,
        replay=analyze(trace, root_release="destroy_rcu", names=names) if replay else None,
        markers=marker_events(trace.events, markers) if markers else None,
    )
    say(f"dashboard written to {display(path)}")


def _write_perfetto(analysis: Analysis, trace: Trace, path: Path, markers: str) -> None:
    from qtrace.dashboards import marker_events
    from qtrace.perfetto import write_perfetto

    write_perfetto(
        analysis, path, markers=marker_events(trace.events, markers) if markers else None
    )
    say(
        f"Perfetto trace written to {display(path)} (open it in ui.perfetto.dev or chrome://tracing)"
    )


PerfettoOpt = Annotated[
    Path | None,
    typer.Option(
        "--perfetto",
        help="Also write the views, pins and anomalies as Chrome trace-event JSON "
        "(ui.perfetto.dev, chrome://tracing).",
    ),
]
FailOnOpt = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        help="Checks that fail, comma separated: 'leaked', an anomaly kind, 'anomalies' "
        "(every kind), 'unreadable' (no FlatView event read: exit 3), 'any' or 'none'. "
        "Default: leaked,anomalies,unreadable.",
    ),
]
BeginOpt = Annotated[
    str | None,
    typer.Option("--begin", help="Window start: a seq (1200) or a time from the start (1.5ms)."),
]
EndOpt = Annotated[
    str | None,
    typer.Option("--end", help="Window end (inclusive): a seq or a time from the start."),
]
MarkersOpt = Annotated[
    str,
    typer.Option(
        "--markers",
        help="Other trace events drawn as vertical markers, as -trace globs ('' for none).",
    ),
]


@command("analyze")
def analyze_command(
    traces: TracesArg,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Report format.")
    ] = ReportFormat.text,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here, not stdout.")
    ] = None,
    fail_on: FailOnOpt = None,
    root_release: RootReleaseOpt = RootRelease.destroy,
    begin: BeginOpt = None,
    end: EndOpt = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML dashboard here.")
    ] = None,
    names_files: NamesOpt = None,
    perfetto: PerfettoOpt = None,
    input_format: InputFormatOpt = None,
    trace_events: TraceEventsOpt = None,
) -> None:
    """Rebuild FlatView and root MemoryRegion lifetimes; report leaks, overlaps and anomalies.

    Exit codes: 0 clean; 1 findings that pass --fail-on; 2 usage error; 3 unreadable input or
    no FlatView event read.
    """
    from qtrace.events import MODEL_EVENTS
    from qtrace.findings import FailPolicy, Findings

    policy = FailPolicy.parse(fail_on)
    names = load_names(names_files)
    events_pattern = ",".join(MODEL_EVENTS) + ("," + DEFAULT_MARKERS if html or perfetto else "")
    trace = load(
        traces, events=events_pattern, input_format=input_format, trace_events=trace_events
    )
    analysis = _analyze(trace, root_release, begin, end, names)
    found = Findings.of(analysis, policy)
    _print_report(analysis, found, fmt, output)
    if html is not None:
        _write_dashboard(
            analysis,
            found,
            trace,
            html,
            plotlyjs=PlotlyJs.inline,
            replay=False,
            markers=DEFAULT_MARKERS,
            names=names,
        )
    if perfetto is not None:
        _write_perfetto(analysis, trace, perfetto, DEFAULT_MARKERS)
    raise typer.Exit(found.exit_code)


def _stdout_console() -> Console:
    """A console whose closed pipe is a BrokenPipeError (rich itself would exit with 1)."""
    from rich.console import Console

    class StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    # A pipe or a CI log has no width: the report's own 120 columns, as in a file (-o),
    # rather than rich's 80, which folds region names.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return StdoutConsole(highlight=False, width=REPORT_WIDTH if piped else None)


def _print_report(
    analysis: Analysis, found: Findings, fmt: ReportFormat, output: Path | None
) -> None:
    """The report in ``fmt``, on stdout or into ``output``.

    A reader that closes the pipe early (``| head``) ends the printing, not the verdict: the
    exit code stays the one the findings give.
    """
    from rich.console import Console

    from qtrace.report import render_json, render_markdown, render_text

    try:
        if fmt is ReportFormat.text and output is None:
            render_text(analysis, _stdout_console(), found)
            return
        if fmt is ReportFormat.json:
            text = render_json(analysis, found)
        elif fmt is ReportFormat.markdown:
            text = render_markdown(analysis, found)
        else:
            capture = Console(record=True, width=REPORT_WIDTH, file=io.StringIO(), highlight=False)
            render_text(analysis, capture, found)
            text = capture.export_text()
        if output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            output.write_text(text, encoding="utf-8")
    except BrokenPipeError:
        _silence_stdout()


@command("dashboard")
def dashboard_command(
    traces: TracesArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML page to write.")],
    markers: MarkersOpt = DEFAULT_MARKERS,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay/--no-replay",
            help="Also draw root pins replayed with --root-release destroy_rcu.",
        ),
    ] = False,
    root_release: RootReleaseOpt = RootRelease.destroy,
    plotlyjs: Annotated[
        PlotlyJs,
        typer.Option(
            "--plotlyjs",
            help="inline: one self-contained file; directory: one shared plotly.min.js beside it.",
        ),
    ] = PlotlyJs.inline,
    begin: BeginOpt = None,
    end: EndOpt = None,
    fail_on: FailOnOpt = None,
    names_files: NamesOpt = None,
    perfetto: PerfettoOpt = None,
    input_format: InputFormatOpt = None,
    trace_events: TraceEventsOpt = None,
) -> None:
    """Write an interactive HTML dashboard (offline: no network needed to view it).

    The exit code is the verdict's, as for analyze: 0 clean; 1 findings that pass
    --fail-on; 3 unreadable input or no FlatView event read.
    """
    from qtrace.events import MODEL_EVENTS
    from qtrace.findings import FailPolicy, Findings

    policy = FailPolicy.parse(fail_on)
    names = load_names(names_files)
    pattern = ",".join(MODEL_EVENTS) + ("," + markers if markers else "")
    trace = load(traces, events=pattern, input_format=input_format, trace_events=trace_events)
    analysis = _analyze(trace, root_release, begin, end, names)
    found = Findings.of(analysis, policy)
    _write_dashboard(
        analysis,
        found,
        trace,
        output,
        plotlyjs=plotlyjs,
        replay=replay,
        markers=markers,
        names=names,
    )
    if perfetto is not None:
        _write_perfetto(analysis, trace, perfetto, markers)
    raise typer.Exit(found.exit_code)


command("batch")(batch_command)
command("diff")(diff_command)
command("names")(names_command)
command("record")(record_command)


def main() -> None:
    """Console entry point: run the app; stray errors become one-line messages."""
    try:
        app()
    except BrokenPipeError:
        # A pager or `head` closed the pipe: not an error worth a traceback.
        _silence_stdout()
        sys.exit(0)
    except OSError as error:
        say(f"error: {error}")
        sys.exit(EXIT_INPUT)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as error:  # polars' Rust panics derive from BaseException
        if os.environ.get("QTRACE_DEBUG"):
            raise
        say(
            f"internal error: {type(error).__name__}: {error} "
            "(a bug in qtrace: rerun with QTRACE_DEBUG=1 for the traceback and report it)"
        )
        sys.exit(EXIT_INTERNAL)
