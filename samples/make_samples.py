"""Regenerate the real QEMU trace samples in this folder, and their README table.

Run ``python samples/make_samples.py`` on a machine with Debian's ``qemu-system-x86``: each
sample is one or more fresh runs of that QEMU, driven by ``tests/qemu_harness.py``. Counts in
the README are taken from the files written, by a reading independent of qtrace.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(SAMPLES_DIR.parent / "tests"))

from qemu_harness import (  # noqa: E402  (the harness lives with the tests)
    DEFAULT_TRACE_PATTERNS,
    Boot,
    Plug,
    QemuHarnessError,
    QemuRun,
    Reset,
    Step,
    Unplug,
    qemu_command,
    qemu_version,
    run_qemu_trace,
)

MAX_TOTAL_BYTES = 1_000_000  # every sample together, so the repository stays small
LINE = re.compile(r"^(?:(\d+)@(\d+)\.(\d+):)?(\w+) (.*)$")
VIEW_ARGS = re.compile(r"^(0x[0-9a-f]+|\(nil\)) \(root (0x[0-9a-f]+|\(nil\))\)$")
BRIDGES = (
    "-device",
    "pci-bridge,id=br1,chassis_nr=1,addr=0x3",
    "-device",
    "pci-bridge,id=br2,bus=br1,chassis_nr=2,addr=0x3",
    "-device",
    "e1000,id=nic0,bus=br2,addr=0x1",
    "-device",
    "virtio-net-pci,id=vnet0,bus=br1,addr=0x4",
)


@dataclass(frozen=True)
class Recipe:
    """One QEMU run: how to start it and what to do over QMP."""

    machine: str
    timestamps: bool
    scenario: tuple[Step, ...]
    extra_args: tuple[str, ...] = ()
    trace_patterns: tuple[str, ...] = DEFAULT_TRACE_PATTERNS


@dataclass(frozen=True)
class Sample:
    """A sample file: one run, or several runs one after another."""

    file: str
    runs: tuple[Recipe, ...]
    shows: str
    meson: bool = False  # the runs are tests of a meson suite; the file is its testlog.txt


def boot(machine: str, timestamps: bool, patterns: tuple[str, ...]) -> Recipe:
    return Recipe(machine, timestamps, (Boot(),), trace_patterns=patterns)


FLATVIEW_ONLY = ("flatview_*",)
SAMPLES = (
    Sample(
        "pc-boot-ts.log",
        (boot("pc", True, DEFAULT_TRACE_PATTERNS),),
        "SeaBIOS boot of `pc` (no guest OS), `TID@SEC.USEC:` lines; BAR mappings too.",
    ),
    Sample(
        "q35-boot-bare.log",
        (boot("q35", False, FLATVIEW_ONLY),),
        "SeaBIOS boot of `q35`, bare lines (no clock): order is line order.",
    ),
    Sample(
        "pc-bridges-ts.log",
        (
            Recipe(
                "pc",
                True,
                (
                    Boot(),
                    Plug("e1000", "hot1", bus="br2", slot=2),
                    Reset(),
                    Unplug("hot1", slot=2, bridge="br2"),
                    Unplug("vnet0", slot=4, bridge="br1"),
                ),
                extra_args=BRIDGES,
            ),
        ),
        "Nested pci-bridges (br2 behind br1), NICs behind both; hotplug behind br2, unplug "
        "from both bridges (ACPI bsel 2 and 1): SeaBIOS programming the bridge windows builds "
        "far more views than a plain boot, still over three roots.",
    ),
    Sample(
        "pc-hotplug-ts.log",
        (
            Recipe(
                "pc",
                True,
                (
                    Boot(),
                    Plug("e1000", "nic1", slot=5),
                    Plug("virtio-net-pci", "nic2", slot=6),
                    Reset(),
                    Unplug("nic1", slot=5),
                    Plug("e1000", "nic1", slot=5),
                    Reset(),
                    Unplug("nic1", slot=5),
                    Unplug("nic2", slot=6),
                ),
            ),
        ),
        "QMP device_add / system_reset / device_del on `pci.0`, twice: view addresses freed "
        "by the RCU thread come back in later flatview_new (pointer reuse).",
    ),
    Sample(
        "multi-run.log",
        (
            boot("pc", False, FLATVIEW_ONLY),
            boot("q35", False, FLATVIEW_ONLY),
            Recipe(
                "pc",
                False,
                (Boot(), Plug("e1000", "nic1", slot=5), Reset(), Unplug("nic1", slot=5)),
                trace_patterns=FLATVIEW_ONLY,
            ),
        ),
        "A meson testlog.txt of three tests, each a real QEMU run, bare lines: each run "
        "starts with its own nil-root flatview_new; meson's own lines in between.",
        meson=True,
    ),
)


MESON_BUILD = """\
project('qtrace-samples', meson_version: '>=0.57')
python = find_program('python3')
{tests}
"""
MESON_TEST = (
    "test('{name}', python, args: [files('make_samples.py'), '--meson-run', '{file}', '{index}'],"
    " protocol: 'tap', suite: 'qtrace-samples', timeout: 120)"
)
# meson writes its whole environment into testlog.txt: give it nothing personal.
MESON_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass
class RunStats:
    """What one run in a sample file holds (read here without qtrace, as a cross-check)."""

    events: Counter[str] = field(default_factory=Counter)
    reused_addresses: int = 0  # view addresses that appear in more than one flatview_new
    live_at_exit: int = 0  # views never destroy_rcu'd (the current view of each root, normally)
    stale_live: int = 0  # live views at exit that a newer view of their root replaced: leaks
    rcu_pending_at_exit: int = 0  # destroy_rcu without destroy: callbacks lost at exit


def is_trace_event(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DEFAULT_TRACE_PATTERNS)


def run_stats(lines: Sequence[str]) -> tuple[list[RunStats], int]:
    """Per-run statistics (a nil-root flatview_new starts a run) and the non-trace line count.

    A loop over lines: this script must not depend on the parser it helps to test.
    """
    runs: list[RunStats] = []
    other_lines = 0
    new_count: Counter[str] = Counter()
    live: dict[str, tuple[str, int]] = {}  # view -> (root, line number of its flatview_new)
    newest: dict[str, int] = {}  # root -> line number of its newest view's flatview_new
    pending: set[str] = set()

    def close() -> None:
        if runs:
            stats = runs[-1]
            stats.reused_addresses = sum(1 for n in new_count.values() if n > 1)
            stats.live_at_exit = len(live)
            stats.stale_live = sum(1 for root, n in live.values() if newest[root] != n)
            stats.rcu_pending_at_exit = len(pending)

    for number, text in enumerate(lines):
        match = LINE.match(text)
        if match is None or not is_trace_event(match[4]):
            other_lines += 1
            continue
        event, args = match[4], match[5]
        view_root = VIEW_ARGS.match(args) if event.startswith("flatview_") else None
        if event == "flatview_new" and view_root is not None and view_root[2] == "(nil)":
            close()
            runs.append(RunStats())
            new_count, live, newest, pending = Counter(), {}, {}, set()
        if not runs:
            raise SystemExit(f"line {number + 1}: events before the first nil-root flatview_new")
        runs[-1].events[event] += 1
        if view_root is None:
            continue
        view, root = view_root[1], view_root[2]
        if event == "flatview_new":
            new_count[view] += 1
            newest[root] = number
            live[view] = (root, number)
        elif event == "flatview_destroy_rcu":
            live.pop(view, None)
            pending.add(view)
        elif event == "flatview_destroy":
            pending.discard(view)
    close()
    return runs, other_lines


def shown_command(recipe: Recipe, log_name: str) -> str:
    """The QEMU command line of ``recipe`` as a reader would type it: no host paths."""
    argv = qemu_command(
        Path(log_name),
        Path("qmp.sock"),
        machine=recipe.machine,
        timestamps=recipe.timestamps,
        trace_patterns=recipe.trace_patterns,
        extra_args=recipe.extra_args,
    )
    argv[0] = Path(argv[0]).name
    return " ".join(f"'{word}'" if "*" in word else word for word in argv)


def run_recipe(recipe: Recipe, log_path: Path) -> QemuRun:
    return run_qemu_trace(
        log_path,
        machine=recipe.machine,
        timestamps=recipe.timestamps,
        scenario=recipe.scenario,
        extra_args=recipe.extra_args,
        trace_patterns=recipe.trace_patterns,
    )


def make_plain(sample: Sample, work: Path) -> None:
    """One or more runs, their traces one after another in the sample file."""
    with (SAMPLES_DIR / sample.file).open("wb") as out:
        for index, recipe in enumerate(sample.runs):
            run = run_recipe(recipe, work / f"run{index + 1}.log")
            with run.log_path.open("rb") as trace:
                shutil.copyfileobj(trace, out)


def make_meson_testlog(sample: Sample, work: Path) -> None:
    """A real meson test suite, one test per run; its testlog.txt becomes the sample.

    Each test is this script in ``--meson-run`` mode: it runs QEMU through the harness and
    copies the trace to its stderr, where a qtest's QEMU puts it under ``QTEST_TRACE``.
    """
    meson = shutil.which("meson")
    if meson is None:
        raise SystemExit("meson not found: install Debian's meson to make " + sample.file)
    project = work / "meson-project"
    project.mkdir()
    shutil.copy(__file__, project / "make_samples.py")
    shutil.copy(Path(qemu_harness_file()), project / "qemu_harness.py")
    tests = [
        MESON_TEST.format(name=run_name(recipe), file=sample.file, index=index)
        for index, recipe in enumerate(sample.runs)
    ]
    (project / "meson.build").write_text(MESON_BUILD.format(tests="\n".join(tests)))
    for args in (["setup", "build"], ["test", "-C", "build", "--no-rebuild", "--num-processes=1"]):
        done = subprocess.run(
            [meson, *args], cwd=project, env=MESON_ENV, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise SystemExit(f"meson {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    shutil.copy(project / "build" / "meson-logs" / "testlog.txt", SAMPLES_DIR / sample.file)


def meson_run(file: str, index: int) -> int:
    """``--meson-run`` mode: one run of a meson sample; TAP on stdout, the trace on stderr."""
    recipe = next(s for s in SAMPLES if s.file == file).runs[index]
    print("1..1")
    print(f"# {shown_command(recipe, 'trace.log')}")
    with tempfile.TemporaryDirectory(prefix="qtrace-run-") as tmp:
        try:
            run = run_recipe(recipe, Path(tmp) / "trace.log")
        except QemuHarnessError as exc:
            print(f"not ok 1 {run_name(recipe)}: {exc}")
            return 1
        sys.stdout.flush()
        sys.stderr.write(run.log_path.read_text())
        sys.stderr.write(run.qemu_stderr)
        sys.stderr.flush()
    print(f"ok 1 {run_name(recipe)}: {'; '.join(step.name for step in recipe.scenario)}; quit")
    return 0


def run_name(recipe: Recipe) -> str:
    plugs = any(isinstance(step, Plug) for step in recipe.scenario)
    return f"{recipe.machine}-{'hotplug' if plugs else 'boot'}"


def qemu_harness_file() -> str:
    return str(sys.modules[run_qemu_trace.__module__].__file__)


def table_row(sample: Sample) -> str:
    path = SAMPLES_DIR / sample.file
    stats, other_lines = run_stats(path.read_text().splitlines())
    if len(stats) != len(sample.runs):
        raise SystemExit(f"{sample.file}: found {len(stats)} runs, made {len(sample.runs)}")
    total: Counter[str] = sum((s.events for s in stats), Counter())
    others = sum(n for e, n in total.items() if not e.startswith("flatview_"))
    leaks = sum(s.stale_live for s in stats)
    verdict = "none" if leaks == 0 else f"{leaks} stale live view(s)"
    cells = [
        f"`{sample.file}`",
        f"{path.stat().st_size / 1000:.0f} kB",
        str(len(stats)),
        str(total["flatview_new"]),
        str(total["flatview_destroy_rcu"]),
        str(total["flatview_destroy"]),
        str(others),
        str(other_lines),
        str(sum(s.reused_addresses for s in stats)),
        f"{sum(s.live_at_exit for s in stats)} live, {sum(s.rcu_pending_at_exit for s in stats)}"
        " pending",
        verdict,
        sample.shows,
    ]
    return "| " + " | ".join(cells) + " |"


def how_made(sample: Sample) -> str:
    parts = [f"### `{sample.file}`\n"]
    if sample.meson:
        parts.append(
            f"A real meson `testlog.txt` (meson {meson_version()}, `meson test --num-processes=1`)"
            f" of a suite of {len(sample.runs)} tests. Each test runs this script with"
            " `--meson-run`: it starts QEMU through the harness, then copies the trace file and"
            " QEMU's own stderr to its stderr (where a qtest's QEMU writes the trace under"
            " `QTEST_TRACE`), with TAP on stdout. Debian ships no qtests, so these are not QEMU's"
            " own tests; meson's headers and the TAP lines are the non-trace lines a reader must"
            " skip.\n"
        )
    for index, recipe in enumerate(sample.runs):
        log_name = "trace.log" if sample.meson else sample.file
        if len(sample.runs) > 1:
            parts.append(f"Run {index + 1} (`{run_name(recipe)}`):\n")
        parts.append(f"```sh\n{shown_command(recipe, log_name)}\n```\n")
        steps = "; ".join(step.name for step in recipe.scenario)
        parts.append(f"QMP steps: {steps}; quit.\n")
    return "\n".join(parts)


def meson_version() -> str:
    meson = shutil.which("meson")
    if meson is None:
        return "absent"
    done = subprocess.run([meson, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


README_HEAD = """\
# Samples: real QEMU traces

Every `.log` here is a real trace written by QEMU's `log` trace backend, made by
`python samples/make_samples.py` (which drives QEMU through `tests/qemu_harness.py`) and
regenerated only by it: do not edit them by hand. QEMU **{version}**, TCG, 128 MiB, no guest
OS (SeaBIOS runs and finds nothing to boot), no display, serial, NIC or disk. Scenario steps
go over QMP; a `device_del` is acknowledged as a guest's ACPI code would, by writing the slot's
bit to the PIIX4 PCI hotplug eject register (port 0xae08, bus chosen at 0xae10) with the human
monitor's `o` command; QEMU then emits `DEVICE_DELETED`.

`pc-boot.simpletrace` (the binary `simple` backend) is copied from `../shared/traces` by
another script and is not made here.

Columns: runs (a nil-root `flatview_new` starts each), the three FlatView events, other trace
events (`pci_update_mappings_add/del`), lines that are not trace events, view addresses seen in
more than one `flatview_new` (pointer reuse), views still live or RCU-pending at `quit` (the
current view of each root stays live: QEMU never tears down its address spaces; pending RCU
callbacks are lost at exit), and leaks: views that outlived a newer view of their root. Counts
are from the files, read without qtrace. Each run has exactly one immortal nil-root view (it is
among the live ones), which is no leak.

"""
COLUMNS = (
    "file",
    "size",
    "runs",
    "new",
    "destroy_rcu",
    "destroy",
    "other events",
    "non-trace lines",
    "reused addresses",
    "at exit",
    "leak",
    "shows",
)


def main() -> None:
    if sys.argv[1:2] == ["--meson-run"]:
        raise SystemExit(meson_run(sys.argv[2], int(sys.argv[3])))
    version = qemu_version().removeprefix("QEMU emulator version ")
    if sys.argv[1:2] != ["--readme-only"]:  # --readme-only: rewrite README.md from the files
        with tempfile.TemporaryDirectory(prefix="qtrace-samples-") as tmp:
            for sample in SAMPLES:
                work = Path(tmp) / Path(sample.file).stem
                work.mkdir()
                (make_meson_testlog if sample.meson else make_plain)(sample, work)
    total_bytes = sum((SAMPLES_DIR / s.file).stat().st_size for s in SAMPLES)
    if total_bytes > MAX_TOTAL_BYTES:
        raise SystemExit(f"samples total {total_bytes} bytes, over {MAX_TOTAL_BYTES}")
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    rows += [table_row(sample) for sample in SAMPLES]
    readme = README_HEAD.format(version=version) + "\n".join(rows)
    readme += "\n\n## How each was made\n\n" + "\n".join(how_made(s) for s in SAMPLES)
    (SAMPLES_DIR / "README.md").write_text(readme)
    print("\n".join(rows))
    print(f"total {total_bytes} bytes")


if __name__ == "__main__":
    main()
