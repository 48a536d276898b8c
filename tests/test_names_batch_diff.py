"""Names in ``qtrace batch`` (Parquet tables, fleet page) and ``qtrace diff`` (roots matched by
name), on the real QEMU 10 trace and its roots file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from qtrace.cli import app

runner = CliRunner()
IO, SYSTEM = "0x563e2c2b82e0", "0x563e2c2e9c00"


@pytest.fixture
def recording(tmp_path: Path, shared_traces: Path) -> Path:
    """A directory laid out as ``qtrace record`` leaves one: the trace and its names beside."""
    run = tmp_path / "artifacts" / "qemu-31546"
    run.mkdir(parents=True)
    shutil.copy(shared_traces / "qemu10-pc-bridges-ts.log", run / "trace.log")
    shutil.copy(shared_traces / "qemu10-pc-bridges-ts.roots.txt", run / "trace.names")
    return run


def test_batch_names_the_roots_of_each_artifact(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["batch", str(recording.parent), "--out", str(out), "-j", "1", "--no-dashboards"]
    )
    assert result.exit_code == 0, result.stderr  # the .names file is no artifact of its own
    roots = pl.read_parquet(out / "roots.parquet")
    assert roots["artifact"].unique().to_list() == [str(recording / "trace.log")]
    named = dict(roots.select("root", "name").rows())
    assert named[int(IO, 16)] == "io" and roots["name"].null_count() == 0
    aliases = roots.filter(pl.col("alias_of").is_not_null())
    assert sorted(aliases["name"]) == ["pci_bridge_io", "pci_bridge_pref_mem"]
    page = (out / "index.html").read_text()
    table = re.search(r'<table class="sortable" id="roots-by-name">.*?</table>', page, re.S)
    assert table is not None
    assert (
        '<td>pci_bridge_io [alias of pci_bridge_io]</td><td class="num" data-v="1">1</td>'
        in (table[0])
    )


def test_batch_names_option_and_a_bad_names_file(
    recording: Path, tmp_path: Path, shared_traces: Path
) -> None:
    (recording / "trace.names").unlink()
    bad = tmp_path / "bad.names"
    bad.write_text("not a names line\n")
    result = runner.invoke(
        app, ["batch", str(recording), "--out", str(tmp_path / "r"), "--names", str(bad)]
    )
    assert result.exit_code == 3
    assert "bad.names:1: not a names line" in result.stderr
    out = tmp_path / "r2"
    names = shared_traces / "qemu10-pc-bridges-ts.roots.txt"
    argv = ["batch", str(recording), "--out", str(out), "-j", "1", "--no-dashboards"]
    result = runner.invoke(app, [*argv, "--names", str(names)])
    assert result.exit_code == 0, result.stderr
    assert pl.read_parquet(out / "roots.parquet")["name"].null_count() == 0


def swapped(text: str) -> str:
    """``text`` with the io and system pointers exchanged."""
    return text.replace(IO, "@@").replace(SYSTEM, IO).replace("@@", SYSTEM)


def test_diff_matches_roots_by_name_not_by_build_order(recording: Path, tmp_path: Path) -> None:
    # B: the same log, but its names say the io and system regions sit at each other's
    # addresses. By build order A's io meets the root B built first (the same history); by
    # name it meets B's "io", whose history is system's: a difference names reveal.
    b = tmp_path / "b" / "trace.log"
    b.parent.mkdir()
    shutil.copy(recording / "trace.log", b)
    b.with_suffix(".names").write_text(swapped((recording / "trace.names").read_text()))
    result = runner.invoke(app, ["diff", str(recording / "trace.log"), str(b), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {row["name"]: row for row in document["roots"]}
    assert {row["matched_by"] for row in document["roots"]} == {"name"}
    assert (rows["io"]["root_a"], rows["io"]["root_b"]) == (IO, SYSTEM)
    assert (rows["io"]["instances_a"], rows["io"]["instances_b"]) == (180, 177)
    assert [row["name"] for row in document["roots"] if row["changed"]] == ["io", "system"]
    # The two bridges' "pci_bridge_io" roots are told apart by their order among equals.
    assert [row["changed"] for row in document["roots"] if row["name"] == "pci_bridge_io"] == [
        False,
        False,
    ]
    text = runner.invoke(app, ["diff", str(recording / "trace.log"), str(b)]).stdout
    assert "roots by name" in text and " io 0x563e2c2b82e0 / 0x563e2c2e9c00" in text
    # Without names: by build order, and nothing differs.
    b.with_suffix(".names").unlink()
    (recording / "trace.names").unlink()
    plain = runner.invoke(app, ["diff", str(recording / "trace.log"), str(b), "-f", "json"])
    rows_by_order = json.loads(plain.stdout)["roots"]
    assert {row["matched_by"] for row in rows_by_order} == {"order"}
    assert not any(row["changed"] for row in rows_by_order)


def test_diff_of_analyze_documents_uses_their_names(recording: Path, tmp_path: Path) -> None:
    b = tmp_path / "b.log"
    b.write_text(swapped((recording / "trace.log").read_text()))
    names_b = tmp_path / "b.txt"
    names_b.write_text(swapped((recording / "trace.names").read_text()))
    documents = []
    for trace, names in ((recording / "trace.log", recording / "trace.names"), (b, names_b)):
        out = tmp_path / f"{trace.stem}.json"
        argv = ["analyze", str(trace), "--names", str(names), "-f", "json", "-o", str(out)]
        assert runner.invoke(app, argv).exit_code == 0
        documents.append(str(out))
    document = json.loads(runner.invoke(app, ["diff", *documents, "-f", "json"]).stdout)
    rows = {row["name"]: row for row in document["roots"]}
    assert (rows["system"]["root_a"], rows["system"]["root_b"]) == (SYSTEM, IO)
