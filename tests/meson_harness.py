"""Make a real meson ``testlog.json`` whose tests boot Debian's QEMU with ``-trace``.

A tiny meson project, written into a temporary directory, declares one test per case; each
test is a shell line that boots QEMU for a moment (SeaBIOS, no guest) with
``-trace 'flatview_*'``, as a qtest with ``QTEST_TRACE='flatview_*'`` does. QEMU's stderr
reaches the test's stderr, which ``meson test`` captures into ``meson-logs/testlog.json``,
and, byte for byte through ``tee``, a plain log file: the same trace in classic log form.
A case without QEMU prints a line of its own (a test with no trace at all).

meson comes from PyPI (the ``dev`` extra: ``python -m mesonbuild.mesonmain``) and needs
``ninja`` (Debian's ninja-build); every step is bounded in time.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from qemu_harness import qemu_binary

MESON = [sys.executable, "-m", "mesonbuild.mesonmain"]
MESON_TIMEOUT_S = 180


class MesonHarnessError(RuntimeError):
    """meson or ninja is missing, or ``meson test`` did not write its log."""


@dataclass(frozen=True)
class Case:
    """One meson test: a QEMU boot (``machine``; ``timestamps`` for ``-msg timestamp=on``),
    or, with ``machine`` None, a test that traces nothing."""

    name: str
    machine: str | None = "pc"
    timestamps: bool = False
    seconds: float = 1.5


@dataclass(frozen=True)
class MesonRun:
    testlog: Path  # meson-logs/testlog.json
    logs: dict[str, Path]  # test name -> the plain log its QEMU wrote (QEMU cases only)


def _command(case: Case, log: Path) -> str:
    if case.machine is None:
        return "echo 'nothing traced here'"
    qemu = [qemu_binary(), "-accel", "tcg", "-m", "128", "-machine", case.machine]
    qemu += ["-display", "none", "-serial", "none", "-monitor", "none", "-nic", "none"]
    qemu += ["-trace", "flatview_*"]
    if case.timestamps:
        qemu += ["-msg", "timestamp=on"]
    boot = f"timeout -s TERM {case.seconds} {shlex.join(qemu)}"
    # QEMU's stderr to the test's stderr and to the file; a stop by SIGTERM is a pass.
    return f"{{ {boot} 2>&1 >/dev/null; true; }} | tee {shlex.quote(str(log))} >&2"


def _meson_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_meson_tests(workdir: Path, cases: list[Case]) -> MesonRun:
    """Write the project, ``meson setup`` and ``meson test``; return the testlog's path.

    Examples
    --------
    >>> run = run_meson_tests(Path("/tmp/m"), [Case("boot-pc")])  # doctest: +SKIP
    >>> run.testlog.name  # doctest: +SKIP
    'testlog.json'
    """
    source = workdir / "project"
    source.mkdir(parents=True, exist_ok=True)
    logs: dict[str, Path] = {}
    tests = []
    for case in cases:
        log = workdir / (case.name.replace("/", "_") + ".log")
        if case.machine is not None:
            logs[case.name] = log
        tests.append(
            f"test({_meson_string(case.name)}, sh, "
            f"args: ['-c', {_meson_string(_command(case, log))}], timeout: 60)"
        )
    (source / "meson.build").write_text(
        "project('qtrace-qtests', meson_version: '>=0.60')\n"
        "sh = find_program('sh')\n" + "\n".join(tests) + "\n"
    )
    build = workdir / "build"
    for args in (["setup", str(build), str(source)], ["test", "-C", str(build)]):
        try:
            done = subprocess.run(
                [*MESON, *args], capture_output=True, text=True, timeout=MESON_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MesonHarnessError(f"meson {args[0]}: {exc}") from exc
        if done.returncode != 0:
            raise MesonHarnessError(f"meson {args[0]} failed: {done.stdout}{done.stderr}")
    testlog = build / "meson-logs" / "testlog.json"
    if not testlog.exists():
        raise MesonHarnessError(f"meson test wrote no {testlog}")
    return MesonRun(testlog, logs)
