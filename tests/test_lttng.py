"""A real LTTng trace of QEMU's FlatView events (tests/lttng_harness.py), read back by
babeltrace2: what the ``ust`` backend's users hand to qtrace.

The events replay a real QEMU log through a UST provider with QEMU's event names and
fields. These tests pin what babeltrace2 really prints, so the log reader's babeltrace2
dialect is checked against real output, not a guess: upper-case hex, nil as ``0x0``, the
``vpid``/``vtid`` context, one line per event in the order of the calls.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lttng_harness import LttngCapture, LttngHarnessError, capture_lttng

import qtrace

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
