"""``qtrace names``: the layout probe on a hand-built memory image, then gdb against Debian's
real QEMU with a pci-bridge, whose roots must come out named."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from qemu_harness import Boot, Qmp, run_qemu_trace
from typer.testing import CliRunner

from qtrace.cli import app
from qtrace.names.gdb import Resolver, resolve_names
from qtrace.names.probe import Layout, probe_layout, resolve

runner = CliRunner()


class Memory:
    """A sparse address space: pages that exist read back, everything else cannot be read."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}

    def write(self, address: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            page = self.pages.setdefault((address + i) // 4096, bytearray(4096))
            page[(address + i) % 4096] = byte

    def word(self, address: int, value: int) -> None:
        self.write(address, struct.pack("<Q", value))

    def read(self, address: int, size: int) -> bytes | None:
        out = bytearray()
        for at in range(address, address + size):
            page = self.pages.get(at // 4096)
            if page is None:
                return None
            out.append(page[at % 4096])
        return bytes(out)


NAME_AT, ALIAS_AT = 0xE8, 0xA0  # QEMU 7.2 to 10.0 on x86_64


def qom_type(memory: Memory, at: int, type_name: bytes) -> int:
    """An ObjectClass whose TypeImpl is named ``type_name``; returns the class address."""
    memory.write(at, type_name + b"\0")
    memory.word(at + 0x100, at)  # TypeImpl::name
    memory.word(at + 0x200, at + 0x100)  # ObjectClass::type
    return at + 0x200


def region(memory: Memory, at: int, klass: int, name: bytes, alias: int = 0) -> int:
    memory.write(at, bytes(0x200))
    memory.word(at, klass)  # Object::class
    memory.write(at + 0x800, name + b"\0")
    memory.word(at + NAME_AT, at + 0x800)
    memory.word(at + ALIAS_AT, alias)
    return at


@pytest.fixture
def qemu_memory() -> tuple[Memory, dict[str, int]]:
    memory = Memory()
    mr_class = qom_type(memory, 0x10000, b"memory-region")
    device_class = qom_type(memory, 0x20000, b"pci-bridge")
    found = {
        "system": region(memory, 0x100000, mr_class, b"system"),
        "io": region(memory, 0x101000, mr_class, b"io"),
        "target": region(memory, 0x102000, mr_class, b"pci_bridge_io"),
    }
    found["alias"] = region(memory, 0x103000, mr_class, b"pci_bridge_io", alias=found["target"])
    # A decoy string in another slot of one region: the vote still picks the name slot.
    memory.write(0x104000, b"opaque text\0")
    memory.word(found["system"] + 0x50, 0x104000)
    found["device"] = region(memory, 0x105000, device_class, b"not a region")
    return memory, found


def test_probe_finds_name_and_alias_slots(qemu_memory: tuple[Memory, dict[str, int]]) -> None:
    memory, at = qemu_memory
    pointers = [at["system"], at["io"], at["alias"], at["device"], 0xDEAD000]
    layout, regions = resolve(memory.read, pointers)
    assert layout == Layout(NAME_AT, ALIAS_AT, "probe")
    named = {r.root: (r.name, r.alias_root, r.alias_of) for r in regions}
    # The device and the unreadable pointer are no regions: left out, not misnamed.
    assert named == {
        at["system"]: ("system", None, None),
        at["io"]: ("io", None, None),
        at["alias"]: ("pci_bridge_io", at["target"], "pci_bridge_io"),
    }


def test_an_alias_slot_that_is_not_always_a_region_is_not_trusted(
    qemu_memory: tuple[Memory, dict[str, int]],
) -> None:
    memory, at = qemu_memory
    memory.word(at["io"] + ALIAS_AT, 0x104000)  # points at text, not at a region
    layout = probe_layout(memory.read, [at["system"], at["io"], at["alias"]])
    assert layout == Layout(NAME_AT, None, "probe")
    _, regions = resolve(memory.read, [at["alias"]], layout)
    assert (regions[0].name, regions[0].alias_root) == ("pci_bridge_io", None)


def test_no_region_no_layout(qemu_memory: tuple[Memory, dict[str, int]]) -> None:
    memory, at = qemu_memory
    assert resolve(memory.read, [at["device"], 0x10]) == (None, [])


def test_a_name_at_the_end_of_a_mapping_reads(qemu_memory: tuple[Memory, dict[str, int]]) -> None:
    memory, at = qemu_memory
    memory.write(0x300000 - 3, b"io\0")  # the next page is not mapped
    memory.word(at["io"] + NAME_AT, 0x300000 - 3)
    _, regions = resolve(memory.read, [at["io"]], Layout(NAME_AT, ALIAS_AT, "debuginfo"))
    assert [r.name for r in regions] == ["io"]


def test_a_process_that_is_not_qemu_is_a_usage_error(tmp_path: Path) -> None:
    log = tmp_path / "q.log"
    log.write_text("flatview_new 0x1 (root 0x2)\n")
    mine = runner.invoke(app, ["names", "--pid", str(os.getpid()), "--trace", str(log)])
    assert mine.exit_code == 2
    assert "not a QEMU" in mine.stderr and mine.stdout == ""
    gone = runner.invoke(app, ["names", "--pid", "2147483646", "--trace", str(log)])
    assert gone.exit_code == 2
    assert gone.stderr.strip() == "qtrace: error: no process with PID 2147483646"


@dataclass
class NameRoots:
    """A scenario step: while QEMU runs, name its roots as a user would, and try the errors."""

    log: Path
    out: Path
    wrong_trace: Path
    results: dict[str, object]

    @property
    def name(self) -> str:
        return "qtrace names"

    def run(self, qmp: Qmp) -> None:
        # With -msg timestamp=on each line starts with its thread id; the main thread's, which
        # builds the first view, is the process id.
        pid = int(self.log.read_text().split("@", 1)[0])
        self.results["pid"] = pid
        argv = ["names", "--pid", str(pid), "--trace", str(self.log), "-o", str(self.out)]
        self.results["names"] = runner.invoke(app, argv)
        self.results["no_gdb"] = runner.invoke(app, argv, env={"PATH": str(self.out.parent)})
        wrong = ["names", "--pid", str(pid), "--trace", str(self.wrong_trace)]
        self.results["wrong"] = runner.invoke(app, wrong)
        # Snapshot after snapshot, a line only for a new or changed name.
        with self.out.with_suffix(".twice").open("w") as handle:
            resolver = Resolver(pid, self.log, handle)
            self.results["twice"] = (resolver.snap(), resolver.snap(), resolver.done)
        # Periodically, until stopped.
        stop = threading.Event()
        with self.out.with_suffix(".every").open("w") as handle:
            timer = threading.Timer(1.0, stop.set)
            timer.start()
            self.results["every"] = resolve_names(pid, self.log, handle, every=0.2, stop=stop)
            timer.join()


@pytest.mark.slow
def test_qtrace_names_names_the_roots_of_a_running_qemu(
    tmp_path: Path, shared_traces: Path
) -> None:
    log, out = tmp_path / "qemu.log", tmp_path / "qemu.names"
    results: dict[str, object] = {}
    step = NameRoots(log, out, shared_traces / "qemu10-pc-bridges-ts.log", results)
    run_qemu_trace(
        log,
        scenario=(Boot(settle_s=0.1), step),
        extra_args=("-device", "pci-bridge,id=br1,chassis_nr=1"),
    )
    named = results["names"]
    assert named.exit_code == 0, named.stderr  # type: ignore[attr-defined]
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert {line.split()[2] for line in lines} == {"system", "io", "memory"}
    assert all(line.endswith(" gdb probe") for line in lines)  # Debian's QEMU has no debug info
    assert "# layout (probe): name at 0xe8, alias at 0xa0" in out.read_text()
    no_gdb = results["no_gdb"]
    assert no_gdb.exit_code == 3  # type: ignore[attr-defined]
    assert "gdb is not installed" in no_gdb.stderr  # type: ignore[attr-defined]
    wrong = results["wrong"]
    assert wrong.exit_code == 3  # type: ignore[attr-defined]
    assert "none of the 11 root pointers" in wrong.stderr  # type: ignore[attr-defined]
    first, second, twice = results["twice"]  # type: ignore[misc]
    assert (first, second, twice.snapshots, twice.lines) == (True, True, 2, 3)
    every = results["every"]
    assert every.snapshots >= 1 and every.lines == 3  # type: ignore[attr-defined]
    # The trace, analyzed with the file: every root named, by gdb.
    report = runner.invoke(app, ["analyze", str(log), "--names", str(out), "-f", "json"])
    assert report.exit_code == 0, report.stderr
    document = json.loads(report.stdout)
    assert {item["name"] for item in document["roots"]["items"]} == {"system", "io", "memory"}
    assert document["names"]["source"]["gdb"] == 3


FAKE_QEMU = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* QOM's first words, as QEMU has them; a MemoryRegion laid out unlike QEMU's (name before
   alias), so only debug info finds its alias field. */
typedef struct TypeImpl { const char *name; } TypeImpl;
typedef struct ObjectClass { TypeImpl *type; } ObjectClass;
typedef struct Object { ObjectClass *klass; void *free; void *properties; unsigned ref; } Object;
typedef struct MemoryRegion MemoryRegion;
struct MemoryRegion { Object parent_obj; long pad[3]; const char *name; MemoryRegion *alias; };

int main(int argc, char **argv) {
    static TypeImpl type = {"memory-region"};
    static ObjectClass klass = {&type};
    MemoryRegion *target = calloc(1, sizeof *target), *alias = calloc(1, sizeof *alias);
    target->parent_obj.klass = alias->parent_obj.klass = &klass;
    target->name = strdup("pci_bridge_io");
    alias->name = strdup("pci_bridge_io");
    alias->alias = target;
    FILE *log = fopen(argv[1], "w");
    fprintf(log, "flatview_new 0x10 (root (nil))\nflatview_new 0x20 (root %p)\n"
                 "flatview_new 0x30 (root %p)\n", (void *)target, (void *)alias);
    fclose(log);
    pause();
    return 0;
}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("debug", "label", "alias"), [(True, "gdb debuginfo", True), (False, "gdb probe", False)]
)
def test_debug_info_gives_the_fields_and_the_probe_does_not_guess(
    tmp_path: Path, debug: bool, label: str, alias: bool
) -> None:
    source, program, log = tmp_path / "fake.c", tmp_path / "qemu-fake", tmp_path / "fake.log"
    source.write_text(FAKE_QEMU)
    flags = ["-g", "-O0"] if debug else ["-O0", "-s"]
    subprocess.run(["gcc", *flags, "-o", str(program), str(source)], check=True, timeout=60)
    process = subprocess.Popen([str(program), str(log)])
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and log.read_text().count("\n") == 3):
            assert time.monotonic() < deadline, "the fake QEMU wrote no trace"
            time.sleep(0.02)
        out = tmp_path / "fake.names"
        argv = ["names", "--pid", str(process.pid), "--trace", str(log), "-o", str(out)]
        result = runner.invoke(app, argv)
    finally:
        process.kill()
        process.wait()
    assert result.exit_code == 0, result.stderr
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 2 and all(line.endswith(label) for line in lines)
    # With debug info the alias is found where this layout has it; the probe, whose QEMU
    # layout does not hold here, says "alias unknown" rather than guess.
    assert any("[alias of 0x" in line for line in lines) is alias
    assert ("alias unknown" in out.read_text()) is not alias
