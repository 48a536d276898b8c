"""`qtrace analyze` and `qtrace dashboard` from the command line, on real traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qtrace.cli import app

runner = CliRunner()


@pytest.fixture
def leaky_log(shared_traces: Path, tmp_path: Path) -> Path:
    """The real QEMU 10 log with both destroy lines of one replaced view removed: a leak."""
    lines = (shared_traces / "qemu10-pc-bridges-ts.log").read_text().splitlines(keepends=True)
    victim = next(line for line in lines if "flatview_destroy_rcu" in line).split()[1]
    kept = [line for line in lines if not ("flatview_destroy" in line and f" {victim} " in line)]
    assert len(kept) == len(lines) - 2
    path = tmp_path / "leaky.log"
    path.write_text("".join(kept))
    return path


def test_clean_sample_exits_0_with_verdict_first(samples: Path) -> None:
    result = runner.invoke(app, ["analyze", str(samples / "pc-boot-ts.log")])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "leaks: 0, anomalies: 0"


def test_leak_exits_1_and_is_listed(leaky_log: Path) -> None:
    result = runner.invoke(app, ["analyze", str(leaky_log), "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["views"]["leaked"] == 1
    (leak,) = report["leaks"]
    assert leak["status"] == "leaked" and leak["source"] == str(leaky_log)
    assert leak["line"] >= 1


def test_fail_on_policy(leaky_log: Path) -> None:
    none = runner.invoke(app, ["analyze", str(leaky_log), "--fail-on", "none"])
    assert none.exit_code == 0
    other = runner.invoke(app, ["analyze", str(leaky_log), "--fail-on", "orphan_destroy"])
    assert other.exit_code == 0
    leaked = runner.invoke(app, ["analyze", str(leaky_log), "--fail-on", "leaked,orphan_destroy"])
    assert leaked.exit_code == 1
    bad = runner.invoke(app, ["analyze", str(leaky_log), "--fail-on", "leakd"])
    assert bad.exit_code == 2 and "leakd" in bad.stderr


def test_json_output_file_is_byte_identical_across_runs(samples: Path, tmp_path: Path) -> None:
    outs = []
    for name in ("a.json", "b.json"):
        out = tmp_path / name
        result = runner.invoke(
            app, ["analyze", str(samples / "pc-hotplug-ts.log"), "-f", "json", "-o", str(out)]
        )
        assert result.exit_code == 0, result.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["schema"] == "qtrace.analyze/1"


def test_markdown_report(leaky_log: Path) -> None:
    result = runner.invoke(app, ["analyze", str(leaky_log), "--format", "markdown"])
    assert result.exit_code == 1
    assert "| " in result.stdout and "leaked" in result.stdout


def test_window_by_seq_and_by_time(samples: Path) -> None:
    trace = str(samples / "pc-boot-ts.log")
    whole = json.loads(runner.invoke(app, ["analyze", trace, "-f", "json"]).stdout)
    by_seq = runner.invoke(app, ["analyze", trace, "-f", "json", "--begin", "0", "--end", "99"])
    assert by_seq.exit_code == 0, by_seq.stderr
    scoped = json.loads(by_seq.stdout)
    assert 0 < scoped["views"]["instances"] < whole["views"]["instances"]
    by_time = runner.invoke(app, ["analyze", trace, "-f", "json", "--end", "1ms"])
    assert by_time.exit_code == 0, by_time.stderr
    assert json.loads(by_time.stdout)["views"]["instances"] < whole["views"]["instances"]


def test_bad_window_values_are_usage_errors(samples: Path) -> None:
    trace = str(samples / "pc-boot-ts.log")
    for args in (["--begin", "soon"], ["--begin", "1.5"], ["--begin", "3", "--end", "2ms"]):
        result = runner.invoke(app, ["analyze", trace, *args])
        assert result.exit_code == 2, (args, result.output)
    no_clock = runner.invoke(app, ["analyze", str(samples / "q35-boot-bare.log"), "--end", "1ms"])
    assert no_clock.exit_code == 2 and "clock" in no_clock.stderr


def test_root_release_replay_changes_pins(shared_traces: Path) -> None:
    trace = str(shared_traces / "qemu10-pc-bridges-ts.log")
    default = json.loads(runner.invoke(app, ["analyze", trace, "-f", "json"]).stdout)
    early = runner.invoke(app, ["analyze", trace, "-f", "json", "--root-release", "destroy_rcu"])
    replay = json.loads(early.stdout)
    assert replay["roots"]["max_concurrent_views"] < default["roots"]["max_concurrent_views"]


def test_unreadable_input_exits_3(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(app, ["analyze", str(junk)])
    assert result.exit_code == 3
    assert "junk.bin" in result.stderr and "Traceback" not in result.output


def test_analyze_html_and_dashboard_write_pages(leaky_log: Path, tmp_path: Path) -> None:
    page = tmp_path / "analyze.html"
    result = runner.invoke(app, ["analyze", str(leaky_log), "--html", str(page)])
    assert result.exit_code == 1
    assert page.read_text().startswith("<!DOCTYPE html>")
    shared = tmp_path / "pages" / "run.html"
    result = runner.invoke(
        app, ["dashboard", str(leaky_log), "-o", str(shared), "--plotlyjs", "directory", "--replay"]
    )
    assert result.exit_code == 1, result.stderr  # the verdict's code, as analyze gives
    assert (shared.parent / "plotly.min.js").is_file()
    assert "plotly.min.js" in shared.read_text()


def test_markers_from_a_real_log_reach_the_page(samples: Path, tmp_path: Path) -> None:
    """pc-hotplug-ts.log has pci_update_mappings_* events: they become timeline markers."""
    page = tmp_path / "hotplug.html"
    result = runner.invoke(app, ["dashboard", str(samples / "pc-hotplug-ts.log"), "-o", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "pci_update_mappings_add" in html and "e1000 00:05.0" in html


def test_a_piped_text_report_keeps_region_names_on_one_line(
    shared_traces: Path, tmp_path: Path
) -> None:
    # A pipe or a CI log has no terminal width: rich's 80 columns folded long names.
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    log = shared_traces / "qemu10-pc-bridges-ts.log"
    names = shared_traces / "qemu10-pc-bridges-ts.roots.txt"
    done = subprocess.run(
        [sys.executable, "-m", "qtrace", "analyze", str(log), "--names", str(names)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert "pci_bridge_pref_mem [alias of pci_bridge_pci]" in lines
    assert "virtio-pci-common-virtio-rng" in lines
