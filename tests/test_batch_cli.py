"""The `batch` and `diff` Typer commands (qtrace.batch.cli), as qtrace.cli registers them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from qtrace.cli import app

LOG = "qemu10-pc-bridges-ts.log"
runner = CliRunner()


def test_batch_command_exit_codes_and_stderr(shared_traces: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    args = ["batch", str(shared_traces / LOG), str(empty), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--jobs", "1", "--no-dashboards"])
    assert result.exit_code == 3, result.stderr
    assert "2 artifacts: 1 clean, 0 with findings, 1 unreadable" in result.stderr
    assert result.stdout == ""  # not on GitHub Actions: no annotations
    assert result.stderr.count("\n") == 1  # no progress bar: stderr is not a terminal
    result = runner.invoke(
        app, [*args, "-j", "1", "--no-dashboards", "--fail-on", "leaked,anomalies"]
    )
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, [*args, "--fail-on", "bogus"])
    assert result.exit_code == 2
    assert result.stderr.startswith("qtrace: error: --fail-on: unknown bogus")
    result = runner.invoke(app, [*args, "--group-by", "("])
    assert result.exit_code == 2 and "--group-by" in result.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["totals"]["artifacts"] == 2


def test_diff_command_formats(shared_traces: Path, tmp_path: Path) -> None:
    trace = str(shared_traces / LOG)
    result = runner.invoke(app, ["diff", trace, trace])
    assert result.exit_code == 0 and result.stdout.endswith("no differences\n")
    result = runner.invoke(app, ["diff", trace, trace, "--format", "json"])
    assert json.loads(result.stdout)["differs"] is False
    page = tmp_path / "diff.html"
    result = runner.invoke(app, ["diff", trace, trace, "-f", "html", "-o", str(page)])
    assert result.exit_code == 0 and page.read_text().startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["diff", trace, str(tmp_path / "missing")])
    assert result.exit_code == 3 and "no such file" in result.stderr
