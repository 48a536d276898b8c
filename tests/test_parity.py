"""One verdict through every door (issue 10): the same trace gives the same findings in the
library, ``qtrace analyze`` (JSON, text, Markdown), ``qtrace dashboard``, ``qtrace batch``
and ``qtrace diff``, with the same exit code wherever a door has one.

Table-driven: each case is a real trace (or a real trace with one documented edit), each door
a function that returns what it shows. A door that recounts, or reads a different set of
events, shows different numbers here; each case also pins the facts it was built for, so a
change that breaks every door alike fails too.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dashboard_samples import page_data
from typer.testing import CliRunner

import qtrace
from qtrace.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared" / "traces"
QEMU10 = SHARED / "qemu10-pc-bridges-ts.log"
runner = CliRunner()


@dataclass(frozen=True)
class Shown:
    """What one door shows of a verdict (None: the door does not show that number)."""

    leaked: int
    anomalies: int
    uncertain: int
    exit_code: int | None
    lost: int | None = None
    kinds: dict[str, int] | None = None  # count per anomaly kind


# ------------------------------------------------------------------------- the traces


def _finalize_while_pinned(tmp: Path) -> Path:
    """The QEMU 10 log with `memory_region_finalize` of a bridge's io alias while a view of
    it is live (after line 427: two views pin root 0x563e2d2198b0)."""
    lines = QEMU10.read_text().splitlines(keepends=True)
    stamp = lines[426].split(":", 1)[0]
    lines.insert(427, f"{stamp}:memory_region_finalize mr 0x563e2d2198b0, pci_bridge_io\n")
    path = tmp / "finalize-while-pinned.log"
    path.write_text("".join(lines))
    return path


def _leaky(tmp: Path) -> Path:
    """The QEMU 10 log with both destroy lines of one replaced view removed: one leak."""
    lines = QEMU10.read_text().splitlines(keepends=True)
    victim = next(line for line in lines if "flatview_destroy_rcu" in line).split()[1]
    kept = [line for line in lines if not ("flatview_destroy" in line and f" {victim} " in line)]
    path = tmp / "leaky.log"
    path.write_text("".join(kept))
    return path


def _simple_with_dropped_events(tmp: Path) -> Path:
    """The real pc-boot.simpletrace as QEMU writes it when its ring buffer overflows: the
    destroy_rcu and destroy records of one view are lost, and a dropped-events record saying
    2 stands where the first of them was. The view then looks leaked, uncertainly."""
    data = (SAMPLES / "pc-boot.simpletrace").read_bytes()
    names: dict[int, str] = {}
    records: list[tuple[int, int, str, int]] = []  # offset, size, event name, view
    offset = 24
    while offset < len(data):
        kind, eid = struct.unpack_from("<QQ", data, offset)
        if kind == 0:  # mapping: type, id, name length, name
            size = 20 + struct.unpack_from("<I", data, offset + 16)[0]
            names[eid] = data[offset + 20 : offset + size].decode()
            records.append((offset, size, "", 0))
        else:  # event: type, id, timestamp, length (from the id on), pid, arguments
            size = 8 + struct.unpack_from("<I", data, offset + 24)[0]
            view = struct.unpack_from("<Q", data, offset + 32)[0] if size >= 48 else 0
            records.append((offset, size, names.get(eid, ""), view))
        offset += size
    victim = next(v for _, _, name, v in records if name == "flatview_destroy_rcu")
    lost = [r for r in records if r[3] == victim and r[2].startswith("flatview_destroy")]
    first = lost[0][0]
    # QEMU stamps the record now and gives it the process's pid (trace/simple.c).
    stamp, _, pid = struct.unpack_from("<QII", data, first + 16)
    dropped = struct.pack("<QQQIIQ", 1, 0xFFFFFFFFFFFFFFFE, stamp, 24 + 8, pid, len(lost))
    out = bytearray()
    for record_offset, size, _, _ in [(0, 24, "", 0), *records]:
        if record_offset == first:
            out += dropped
        if not any(record_offset == r[0] for r in lost):
            out += data[record_offset : record_offset + size]
    path = tmp / "dropped.simpletrace"
    path.write_bytes(bytes(out))
    return path


def _copy(source: Path) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        target = tmp / source.name
        shutil.copyfile(source, target)
        return target

    return make


# (case id, maker, facts every door must show: a subset of Shown's fields and kinds)
CASES: list[tuple[str, Callable[[Path], Path], dict[str, Any]]] = [
    ("pc-boot-ts", _copy(SAMPLES / "pc-boot-ts.log"), {"leaked": 0, "exit_code": 0}),
    ("q35-boot-bare", _copy(SAMPLES / "q35-boot-bare.log"), {"leaked": 0, "exit_code": 0}),
    ("pc-hotplug-ts", _copy(SAMPLES / "pc-hotplug-ts.log"), {"leaked": 0, "exit_code": 0}),
    ("pc-bridges-ts", _copy(SAMPLES / "pc-bridges-ts.log"), {"leaked": 0, "exit_code": 0}),
    ("multi-run", _copy(SAMPLES / "multi-run.log"), {"leaked": 0}),
    ("pc-boot-simple", _copy(SAMPLES / "pc-boot.simpletrace"), {"exit_code": 0}),
    ("bridges-mixed-simple", _copy(SHARED / "pc-bridges-mixed.simpletrace"), {}),
    ("qemu10", _copy(QEMU10), {"exit_code": 0}),
    ("leaky", _leaky, {"leaked": 1, "exit_code": 1}),
    (
        "finalize-while-pinned",
        _finalize_while_pinned,
        {"root_finalized_while_pinned": 1, "exit_code": 1},
    ),
    ("dropped-events", _simple_with_dropped_events, {"leaked": 1, "uncertain": 1}),
]


# -------------------------------------------------------------------------- the doors


def library(path: Path, tmp: Path) -> Shown:
    found = qtrace.Findings.of(qtrace.analyze(qtrace.read_trace(str(path))))
    return Shown(
        found.leaked,
        found.anomaly_total,
        found.uncertain,
        found.exit_code,
        found.lost,
        dict(found.anomalies),
    )


def _verdict_json(verdict: dict[str, Any], exit_code: int | None) -> Shown:
    kinds = {k: v for k, v in verdict["checks"].items() if k not in ("readable", "leaked")}
    assert exit_code is None or verdict["exit_code"] == exit_code
    return Shown(
        verdict["leaked"],
        verdict["anomalies"],
        verdict["uncertain"],
        verdict["exit_code"],
        verdict["lost"],
        kinds,
    )


def analyze_json(path: Path, tmp: Path) -> Shown:
    result = runner.invoke(app, ["analyze", str(path), "--format", "json"])
    document = json.loads(result.stdout)
    assert sum(document["anomalies"].values()) == document["verdict"]["anomalies"]
    return _verdict_json(document["verdict"], result.exit_code)


VERDICT_LINE = re.compile(r"leaks: (\d+), anomalies: (\d+)")
UNCERTAIN = re.compile(r"(\d+) finding\(s\) uncertain")


def _from_line(line: str, exit_code: int) -> Shown:
    counts = VERDICT_LINE.search(line)
    assert counts is not None, line
    uncertain = UNCERTAIN.search(line)
    return Shown(int(counts[1]), int(counts[2]), int(uncertain[1]) if uncertain else 0, exit_code)


def analyze_text(path: Path, tmp: Path) -> Shown:
    result = runner.invoke(app, ["analyze", str(path)])
    return _from_line(result.stdout.splitlines()[0], result.exit_code)


def analyze_markdown(path: Path, tmp: Path) -> Shown:
    result = runner.invoke(app, ["analyze", str(path), "--format", "markdown"])
    bold = next(line for line in result.stdout.splitlines() if line.startswith("**"))
    return _from_line(bold, result.exit_code)


def dashboard(path: Path, tmp: Path) -> Shown:
    page = tmp / "page.html"
    result = runner.invoke(app, ["dashboard", str(path), "-o", str(page), "--markers", ""])
    verdict = page_data(page.read_text())["verdict"]
    return _verdict_json(verdict, result.exit_code)


def batch(path: Path, tmp: Path) -> Shown:
    out = tmp / "batch"
    result = runner.invoke(app, ["batch", str(path), "-o", str(out), "-j", "1", "--no-dashboards"])
    (record,) = json.loads((out / "summary.json").read_text())["artifacts"]
    shown = _verdict_json(record["verdict"], None)
    assert record["findings"] == record["verdict"]["checks"]
    # The batch's own code, summary.md and junit say the same.
    assert result.exit_code == shown.exit_code, result.output
    markdown = (out / "summary.md").read_text()
    assert f"| {shown.leaked} | {shown.anomalies} |" in markdown
    junit = (out / "junit.xml").read_text()
    assert junit.count("<failure ") == len(record["verdict"]["failing"])
    return shown


def diff(path: Path, tmp: Path) -> Shown:
    result = runner.invoke(app, ["diff", str(path), str(path), "--format", "json"])
    document = json.loads(result.stdout)
    assert document["differs"] is False
    counts = {c["name"]: c["a"] for c in document["counts"]}
    kinds = {
        name.removeprefix("anomalies."): n
        for name, n in counts.items()
        if name.startswith("anomalies.")
    }
    return Shown(
        counts["verdict.leaked"],
        counts["verdict.anomalies"],
        counts["verdict.uncertain"],
        counts["verdict.exit_code"],
        counts["verdict.lost"],
        kinds,
    )


DOORS = [analyze_json, analyze_text, analyze_markdown, dashboard, batch, diff]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "make", "facts"), CASES, ids=[c[0] for c in CASES])
def test_every_door_shows_the_librarys_verdict(
    case: str, make: Callable[[Path], Path], facts: dict[str, Any], tmp_path: Path
) -> None:
    trace = make(tmp_path)
    truth = library(trace, tmp_path)
    for name, value in facts.items():
        if truth.kinds is not None and name in truth.kinds:
            assert truth.kinds[name] == value, name
        else:
            assert getattr(truth, name) == value, name
    for door in DOORS:
        room = tmp_path / door.__name__
        room.mkdir()
        shown = door(trace, room)
        for field in ("leaked", "anomalies", "uncertain", "exit_code", "lost", "kinds"):
            value = getattr(shown, field)
            if value is not None:
                assert value == getattr(truth, field), f"{door.__name__}: {field}"
