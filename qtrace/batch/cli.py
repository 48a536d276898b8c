"""Typer commands ``qtrace batch`` and ``qtrace diff``, for ``qtrace/cli.py`` to register.

    app.command("batch")(batch_command)
    app.command("diff")(diff_command)

Each parses options, calls the library, prints; all logic is in ``run_batch`` and ``diff``,
imported when a command runs (they bring plotly and the dashboards). Errors are
``QtraceError``s, which qtrace/cli.py turns into one line and an exit code.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from qtrace.batch.artifact import DEFAULT_MAX_INPUT_BYTES
from qtrace.messages import say
from qtrace.names_cli import NamesOpt, load_names

BATCH_EXIT_CODES = (
    "Exit codes: 0 nothing failed; 1 findings that fail by --fail-on (or, with --baseline, got "
    "worse); 2 usage error; 3 some artifacts could not be read and nothing else failed."
)


class Engine(StrEnum):
    local = "local"
    dask = "dask"


class DiffFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


def batch_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Trace files, directories (recursive), globs; tar and zip archives are read "
            "member by member (named archive!member).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for every output (created).")],
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Worker processes [default: the cores]."),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Checks that fail the batch, comma-separated or repeated, as for analyze: "
            "leaked, an anomaly kind, anomalies, unreadable, any, none "
            "[default: leaked,anomalies,unreadable].",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="A previous summary.json: fail only on what got worse."),
    ] = None,
    engine: Annotated[Engine, typer.Option("--engine", help="Where tasks run.")] = Engine.local,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Dask scheduler address (tcp://HOST:PORT) for --engine dask."
        ),
    ] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="Regex joining per-thread files into one run: its first group names the run, "
            r"or without a group the match is removed (e.g. '\.\d+$' for log.%d).",
        ),
    ] = None,
    max_input_bytes: Annotated[
        int,
        typer.Option(
            "--max-input-bytes",
            min=1,
            help="Per-artifact limit on bytes read after decompression; larger artifacts "
            "(and decompression bombs) get a failure record.",
        ),
    ] = DEFAULT_MAX_INPUT_BYTES,
    no_dashboards: Annotated[
        bool, typer.Option("--no-dashboards", help="Skip the per-artifact dashboard pages.")
    ] = False,
    names_files: NamesOpt = None,
) -> None:
    """Analyze many trace artifacts: summary.json, Parquet tables, junit.xml, summary.md and
    a fleet dashboard (index.html) in --out.

    With GITHUB_ACTIONS=true, prints ::error annotations at the log line of each leaked view;
    with GITHUB_STEP_SUMMARY set, appends summary.md there.
    """
    from qtrace.batch.runner import run_batch

    load_names(names_files)  # a names file that does not parse ends the batch before it starts
    result = run_batch(
        inputs,
        out,
        jobs=jobs,
        fail_on=fail_on,
        baseline=baseline,
        engine=engine.value,
        scheduler=scheduler,
        group_by=group_by,
        max_input_bytes=max_input_bytes,
        progress=True,
        dashboards=not no_dashboards,
        names_files=tuple(str(p) for p in names_files or ()),
    )
    totals = result.totals
    say(
        f"{totals['artifacts']} artifacts: {totals['clean']} clean, "
        f"{totals['with_findings']} with findings, {totals['unreadable']} unreadable; "
        f"report in {result.out_dir}/index.html"
    )
    for verdict in result.verdicts:
        if verdict.improved:
            say(f"improved: {verdict.artifact}: {', '.join(verdict.improved)}")
    raise typer.Exit(result.exit_code)


def diff_command(
    a: Annotated[str, typer.Argument(help="A trace file, analyze JSON, or batch summary.json.")],
    b: Annotated[str, typer.Argument(help="The same kind of input as A.")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DiffFormat.text
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    names_files: NamesOpt = None,
) -> None:
    """Compare two traces (counts, per-root instances and max concurrency, statuses) or two
    batch summaries; differences are marked. Exit code 0 either way (3 for unreadable input).

    With names (--names files, applied to both traces), roots are matched by name rather
    than by the order in which each run first built them.
    """
    from qtrace.diff import diff, render_html, render_json, render_text

    names = load_names(names_files)
    result = diff(a, b, names=names)
    if fmt is DiffFormat.json:
        text = json.dumps(render_json(result), indent=1) + "\n"
    elif fmt is DiffFormat.html:
        text = render_html(result)
    else:
        text = render_text(result)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
