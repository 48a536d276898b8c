"""``qtrace record`` on Debian's real QEMU: stopped as libqtest and a user stop it, it leaves a
trace, a report and QEMU's exit status; as a ``QTEST_QEMU_BINARY`` wrapper it names each
recording by QEMU's PID."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qemu_harness import qemu_binary

pytestmark = pytest.mark.slow

QTRACE = [sys.executable, "-m", "qtrace"]
QEMU_ARGS = [
    "-accel", "tcg", "-m", "128", "-machine", "pc", "-display", "none", "-serial", "none",
    "-monitor", "none", "-nic", "none", "-device", "pci-bridge,id=br1,chassis_nr=1",
]  # fmt: skip
WAIT_S = 30.0


def wait_for(what: str, ready: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:.0f} s")
        time.sleep(0.05)


def recordings(out: Path) -> list[Path]:
    return sorted(out.glob("qemu-*"))


def has_roots(directory: Path, count: int = 3) -> bool:
    trace = directory / "trace.log"
    text = trace.read_text() if trace.exists() else ""
    return (
        len({line.split("(root ")[1] for line in text.splitlines() if "(root 0x" in line}) >= count
    )


def one_recording_with_roots(out: Path) -> Path:
    wait_for(
        "trace with roots", lambda: len(recordings(out)) == 1 and has_roots(recordings(out)[0])
    )
    return recordings(out)[0]


def finish(process: subprocess.Popen[str], timeout_s: float = WAIT_S) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, stderr


def test_sigterm_ends_qemu_and_leaves_a_named_report(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    command = [*QTRACE, "record", "--out", str(out), "--names", "--every", "1", "--"]
    process = subprocess.Popen(
        [*command, qemu_binary(), *QEMU_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    directory = one_recording_with_roots(out)
    names = directory / "trace.names"
    wait_for("names", lambda: names.exists() and " gdb probe" in names.read_text())
    process.send_signal(signal.SIGTERM)  # what libqtest does at the end of a test
    status, stdout, stderr = finish(process)
    # QEMU exits normally on SIGTERM, and the recorder with QEMU's status.
    assert status == 0, stderr
    pid = int(directory.name.removeprefix("qemu-"))
    assert f"QEMU {pid} exited with status 0" in stderr
    assert {p.name for p in directory.iterdir()} == {
        "trace.log", "trace.names", "report.json", "dashboard.html"
    }  # fmt: skip
    # Named by QEMU's own PID: the main thread's id on the trace's first line.
    assert (directory / "trace.log").read_text().split("@", 1)[0] == str(pid)
    report = json.loads((directory / "report.json").read_text())
    assert {item["name"] for item in report["roots"]["items"]} == {"system", "io", "memory"}
    assert report["names"]["source"]["gdb"] == 3
    assert stdout.startswith("leaks: 0, anomalies: 0\n")
    assert "system" in stdout
    assert "views pin them" not in stdout  # no live summary when stdout is not a terminal
    assert "<!DOCTYPE html>" in (directory / "dashboard.html").read_text()[:100]


def test_exit_status_of_a_qemu_killed_by_a_signal(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    command = [*QTRACE, "record", "-q", "--no-dashboard", "--out", str(out), "--"]
    process = subprocess.Popen(
        [*command, qemu_binary(), *QEMU_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    directory = one_recording_with_roots(out)
    os.kill(int(directory.name.removeprefix("qemu-")), signal.SIGKILL)
    status, stdout, _ = finish(process)
    assert status == 128 + signal.SIGKILL
    assert stdout == ""  # --quiet
    assert json.loads((directory / "report.json").read_text())["roots"]["distinct"] == 3


def test_a_qemu_that_fails_to_start_gives_its_status(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    result = subprocess.run(
        [*QTRACE, "record", "--out", str(out), "--", qemu_binary(), "-no-such-option"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert result.returncode == 1
    assert "-no-such-option" in result.stderr  # QEMU's own message
    assert "exited with status 1 and traced nothing" in result.stderr
    assert result.stdout == ""


def test_as_a_libqtest_wrapper_each_qemu_gets_its_own_recording(tmp_path: Path) -> None:
    out, bin_dir = tmp_path / "rec", tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "qemu-system-x86_64"
    made = subprocess.run(
        [*QTRACE, "record", "--wrapper", str(wrapper), "--out", str(out), "--", qemu_binary()],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert made.returncode == 0, made.stderr
    inline = f"{sys.executable} -m qtrace record -q --no-dashboard --out {out} -- {qemu_binary()}"
    started = []
    for binary in (str(wrapper), inline):
        # libqtest: the arch is the text after the binary's last '-' ...
        assert binary.rsplit("-", 1)[1] == "x86_64"
        # ... and QEMU runs as `sh -c "exec $QTEST_QEMU_BINARY ARGS"`.
        started.append(
            subprocess.Popen(
                ["/bin/sh", "-c", f"exec $QTEST_QEMU_BINARY {' '.join(QEMU_ARGS)}"],
                env={**os.environ, "QTEST_QEMU_BINARY": binary},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    wait_for(
        "two traces", lambda: len(recordings(out)) == 2 and all(map(has_roots, recordings(out)))
    )
    for process in started:
        process.send_signal(signal.SIGTERM)  # to the PID libqtest knows: the recorder's
    for process in started:
        status, stdout, stderr = finish(process)
        assert (status, stdout) == (0, ""), stderr
    for directory in recordings(out):
        pid = directory.name.removeprefix("qemu-")
        assert (directory / "trace.log").read_text().split("@", 1)[0] == pid
        assert json.loads((directory / "report.json").read_text())["roots"]["distinct"] == 3
    assert {(d / "dashboard.html").exists() for d in recordings(out)} == {True, False}


def test_a_terminal_shows_a_live_summary_and_sigint_is_passed_on(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    main, terminal = os.openpty()
    command = [*QTRACE, "record", "--no-dashboard", "--out", str(out), "--"]
    with (tmp_path / "stderr").open("w") as stderr:
        process = subprocess.Popen(
            [*command, qemu_binary(), *QEMU_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=stderr,
        )
    os.close(terminal)
    shown = b""

    def summary_shown() -> bool:
        nonlocal shown
        if select.select([main], [], [], 0.1)[0]:  # never block: wait_for keeps the deadline
            shown += os.read(main, 65536)
        return b"views pin them" in shown and b" 3 roots" in shown

    try:
        wait_for("live summary", summary_shown)
        # SIGINT to the recorder alone (not its process group): it must pass it on to QEMU,
        # which stops cleanly on it.
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT_S) == 0, (tmp_path / "stderr").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    assert b"QEMU " in shown and b"RCU-pending" in shown
