"""Make the real config-write-storm log of issue 11's benchmarks with Debian's QEMU.

A guest driver that toggles a PCI device's command register rebuilds the FlatViews of every
address space on each write: thousands of short-lived views a second, the shape that makes
qtrace's model work hardest. This drives that storm through QEMU's qtest protocol (no guest
needed): an e1000 with a memory and an I/O BAR, then writes that switch its memory and I/O
decoding on and off, with ``-trace flatview_*``, until the log holds ``--mib`` MiB. (How many
views a write leaves depends on when the RCU thread runs: by size, not by count, the log is
the same size each time.)

    python bench/make_storm.py build/bench/storm.log            # 95 MiB, about 1.2M events
    python bench/make_storm.py /tmp/small.log --mib 4
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

QEMU = "qemu-system-x86_64"
DEVICE_SLOT = 3
STORM_MIB = 95  # issue 11's log: a real 98 MB storm
WRITES_PER_CHECK = 1_000  # writes between two looks at the log's size


def _config_address(register: int) -> int:
    """The 0xcf8 address of ``register`` of the device in slot DEVICE_SLOT, bus 0."""
    return 0x8000_0000 | (DEVICE_SLOT << 11) | register


def make_storm(out: Path, mib: float = STORM_MIB) -> Path:
    """Run QEMU with FlatView tracing into ``out`` until it holds ``mib`` MiB of storm."""
    if shutil.which(QEMU) is None:
        raise SystemExit(f"{QEMU} is not installed (Debian: apt install qemu-system-x86)")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        QEMU, "-machine", "pc", "-accel", "tcg", "-display", "none", "-nodefaults", "-m", "128",
        "-device", f"e1000,addr={DEVICE_SLOT},netdev=n0", "-netdev", "user,id=n0",
        "-msg", "timestamp=on", "-trace", "flatview_*", "-D", str(out), "-qtest", "stdio",
    ]  # fmt: skip
    qemu = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    requests, answers = qemu.stdin, qemu.stdout
    assert requests is not None and answers is not None

    def send(line: str) -> None:
        requests.write(line + "\n")
        requests.flush()
        answer = answers.readline()
        if not answer.startswith("OK"):
            raise RuntimeError(f"qtest {line!r}: {answer!r}")

    try:
        send(f"outl 0xcf8 {_config_address(0x10):#x}")  # BAR0: memory
        send("outl 0xcfc 0xfeb80000")
        send(f"outl 0xcf8 {_config_address(0x14):#x}")  # BAR1: I/O
        send("outl 0xcfc 0xc001")
        while out.stat().st_size < mib * 2**20:
            for write in range(WRITES_PER_CHECK):
                send(f"outl 0xcf8 {_config_address(0x04):#x}")  # the command register
                send(f"outw 0xcfc {0x7 if write % 2 == 0 else 0:#x}")
    finally:
        qemu.terminate()
        qemu.wait(timeout=60)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--mib", type=float, default=STORM_MIB, help="the log's size")
    args = parser.parse_args(argv)
    made = make_storm(args.out, args.mib)
    print(f"{made}: {made.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
