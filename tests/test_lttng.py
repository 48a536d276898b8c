"""A real LTTng trace of QEMU's FlatView events (tests/lttng_harness.py), read back by
babeltrace2 and, as a CTF directory, by qtrace through the bt2 bindings.

The events replay a real QEMU log through a UST provider with QEMU's event names and
fields. These tests pin what babeltrace2 really prints, so the log reader's babeltrace2
dialect is checked against real output, not a guess: upper-case hex, nil as ``0x0``, the
``vpid``/``vtid`` context, one line per event in the order of the calls.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from lttng_harness import LttngCapture, LttngHarnessError, capture_lttng
from qtrace.parsers.ctf import is_ctf_dir
from typer.testing import CliRunner

import qtrace
from qtrace.cli import app

pytestmark = pytest.mark.slow

SOURCE_LOG = "pc-boot-ts.log"
LINE = re.compile(
    r"^\[(?P<clock>[0-9:.]+)\] \((?P<delta>[+0-9.?]+)\) (?P<host>\S+) qemu:(?P<event>\w+): "
    r"\{ cpu_id = [0-9]+ \}, \{ vpid = (?P<vpid>[0-9]+), vtid = (?P<vtid>[0-9]+), "
    r'procname = "qemu-replay" \}, '
    r"\{ view = (?P<view>0x[0-9A-F]+), root = (?P<root>0x[0-9A-F]+) \}$"
)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> LttngCapture:
    try:
        return capture_lttng(tmp_path_factory.mktemp("lttng"), samples / SOURCE_LOG)
    except LttngHarnessError as exc:
        pytest.fail(str(exc))


def test_babeltrace2_prints_every_event_of_the_log(capture: LttngCapture, samples: Path) -> None:
    log = qtrace.read_events(samples / SOURCE_LOG)
    lines = capture.text.read_text().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), next(line for line, m in zip(lines, matches, strict=True) if not m)
    found = [m for m in matches if m is not None]
    assert [m["event"] for m in found] == log["event"].cast(str).to_list()
    assert [int(m["view"], 16) for m in found] == log["view"].to_list()
    assert [int(m["root"], 16) for m in found] == log["root"].to_list()
    # QEMU's (nil) is the integer 0, printed 0x0; hex digits are upper case.
    assert found[0]["root"] == "0x0" and any(re.search("[A-F]", m["view"]) for m in found)
    assert len({(m["vpid"], m["vtid"]) for m in found}) == 1
    assert (capture.ctf_dir / "ust").is_dir()
    assert list(capture.ctf_dir.rglob("metadata"))


# Debian's python3-bt2 is built for Debian's python3 (3.11, as this environment's): only the
# bt2 package is put on the path, not the rest of Debian's site-packages.
DEBIAN_BT2 = Path("/usr/lib/python3/dist-packages/bt2")
SAME = ["event", "view", "root", "args"]


def test_ctf_directory_through_bt2(
    capture: LttngCapture, samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "bt2").symlink_to(DEBIAN_BT2)
    monkeypatch.syspath_prepend(str(site))
    trace = qtrace.read_trace(capture.ctf_dir)
    assert (trace.format, trace.dialect, trace.clock) == ("ctf", "lttng-ust", "wall-ns")
    events = trace.events
    log = qtrace.read_events(samples / SOURCE_LOG)
    assert events.select(SAME).equals(log.select(SAME))
    # The replaying process: one pid and thread, from the vpid/vtid contexts.
    assert events["pid"].n_unique() == 1 and events["pid"].null_count() == 0
    assert events["tid"].to_list() == events["pid"].to_list()
    assert events["ts_ns"].is_sorted() and events["ts_ns"].null_count() == 0
    # line: the line babeltrace2 prints the event on.
    text = capture.text.read_text().splitlines()
    assert events["line"].to_list() == list(range(1, len(text) + 1))
    analysis = qtrace.analyze(trace)
    assert analysis.runs == 1
    assert analysis.views.height == qtrace.analyze(log).views.height


def test_ctf_directory_without_bt2(capture: LttngCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bt2", None)  # as if python3-bt2 were not installed
    result = CliRunner().invoke(app, ["analyze", str(capture.ctf_dir)])
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"qtrace: error: {capture.ctf_dir}: an LTTng (CTF) trace directory; reading it needs "
        "babeltrace2's Python bindings (Debian: python3-bt2), or print it as text: "
        "babeltrace2 DIR > trace.txt"
    )


def test_a_plain_directory_is_no_ctf_trace(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "trace.log").write_text("flatview_new 0x1 (root (nil))\n")
    assert not is_ctf_dir(tmp_path)
    (tmp_path / "sub" / "metadata").write_text("/* CTF 1.8 */\n")
    assert is_ctf_dir(tmp_path) and not is_ctf_dir(tmp_path / "sub" / "trace.log")
