"""Odd option values, hostile baselines and closed pipes end in one line and a documented code.

(Issue 13: each of these gave exit 4, a traceback, or the findings code before.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qtrace.cli import app

runner = CliRunner()
CLEAN = "pc-boot-ts.log"


@pytest.mark.parametrize(
    "option",
    [
        ["--begin", "99999999999999999999999"],
        ["--end", "1" + "0" * 400 + "s"],
        ["--begin", "1" + "0" * 30 + "ns"],
    ],
)
def test_out_of_range_window_bounds_are_usage_errors(samples: Path, option: list[str]) -> None:
    result = runner.invoke(app, ["analyze", str(samples / CLEAN), *option])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("qtrace: error: ") and "out of range" in line


@pytest.mark.parametrize(
    "document",
    [
        {"schema": "qtrace.batch/1", "artifacts": [{"artifact": "a", "anomalies": [1]}]},
        {"schema": "qtrace.batch/1", "artifacts": [{"artifact": "a", "findings": {"leaked": "x"}}]},
        {"schema": "qtrace.batch/1", "artifacts": "all of them"},
        {"schema": "qtrace.batch/1", "artifacts": [{"error": 3}]},
    ],
)
def test_baseline_of_the_wrong_shape_is_unreadable_input(
    samples: Path, tmp_path: Path, document: dict[str, object]
) -> None:
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(document))
    result = runner.invoke(
        app,
        ["batch", str(samples / CLEAN), "-o", str(tmp_path / "out"), "--baseline", str(baseline)],
    )
    assert result.exit_code == 3, result.output
    (line,) = result.stderr.splitlines()
    assert "not a qtrace batch summary" in line


def test_baseline_nested_too_deeply_is_unreadable_input(samples: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "deep.json"
    baseline.write_text("[" * 100_000 + "]" * 100_000)
    result = runner.invoke(
        app,
        ["batch", str(samples / CLEAN), "-o", str(tmp_path / "out"), "--baseline", str(baseline)],
    )
    assert result.exit_code == 3, result.output
    assert "nested too deeply" in result.stderr and "Traceback" not in result.output


def _run_with_closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the real command line with a standard output whose reader has already gone."""
    code = "from qtrace.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head -0` does: every write now fails with EPIPE
    with process.stderr:
        stderr = process.stderr.read()
    return subprocess.CompletedProcess(process.args, process.wait(), b"", stderr)


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_closed_pipe_keeps_the_verdicts_exit_code(samples: Path, fmt: str) -> None:
    clean = _run_with_closed_stdout("analyze", str(samples / CLEAN), "--format", fmt)
    assert (clean.returncode, clean.stderr) == (0, b"")
    relaxed = _run_with_closed_stdout(
        "analyze", str(samples / CLEAN), "--format", fmt, "--fail-on", "none"
    )
    assert (relaxed.returncode, relaxed.stderr) == (0, b"")


def test_markdown_escapes_hostile_file_names(shared_traces: Path, tmp_path: Path) -> None:
    name = "a`b`<script>x<|c\x1b[31m\u202eevil"
    hostile = tmp_path / f"{name}.log"
    hostile.write_bytes((shared_traces / "qemu10-pc-bridges-ts.log").read_bytes())
    result = runner.invoke(app, ["analyze", str(hostile), "--format", "markdown"])
    text = result.stdout
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\x1b" not in text and "\u202e" not in text
    assert "a\\`b\\`" in text and "\\|c" in text
