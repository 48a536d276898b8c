"""Benchmark: qtrace's simple-backend reader against QEMU's own scripts/simpletrace.py.

Builds a large binary trace by repeating the real records of ../shared/traces: a mixed one
from pc-bridges-mixed (FlatView, ``memory_region_ops_*`` with a string argument, ``pci_*``;
about 84 bytes a record), with a dropped-events record between repetitions as a full ring
buffer leaves them, or a FlatView-only one from pc-boot. Then it times whole commands, as a
user runs them, side by side in one run (each repeated, in turns, so that load from other
work on the machine falls on all of them alike), and reports medians and their ratios:

- the baseline, ``simpletrace.py trace-events-all FILE > /dev/null``;
- ``qtrace events FILE --all --trace-events trace-events-all -f parquet -o OUT`` (every record
  decoded, as simpletrace.py does) and the same to stdout as CSV (the default format);
- ``qtrace events FILE -f parquet -o OUT``: the events the model reads, the FlatView ones;
- the floor under every qtrace command: the FlatView command on the 200 KB real trace (start-up
  and the modules a simple trace needs: python, polars, numpy; the largest ratio any command
  could reach is simpletrace.py's time over it);
- for each, wall seconds and CPU seconds (user + system, every thread: less sensitive to
  other work on a shared machine), and the ratio simpletrace.py / it, both ways;
- in one process, qtrace's ``parse`` alone (after a warm-up read of the small real trace),
  with its peak RSS.

QEMU's reader comes from Debian's qemu source package (bookworm, QEMU 7.2, the build the real
traces come from), cached under build/qemu-src (gitignored). When it is missing the bench
fetches it the way a person would::

    # once, as root: a deb-src entry for bookworm, then
    flock /tmp/apt.lock apt-get update
    cd build/qemu-src/dl && apt-get source --download-only qemu
    tar -xJf qemu_*.orig.tar.xz --strip-components=1 -C .. \\
        qemu-7.2.0/scripts/simpletrace.py qemu-7.2.0/scripts/tracetool

Run: ``python bench/bench_simple.py [--records N] [--kind mixed|flatview|both] [--repeat N]
[--workdir DIR] [--json]`` (default: the mixed trace, 1,400,000 records, 118 MB; five turns;
about three minutes, most of it simpletrace.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "traces"
QEMU_SRC = ROOT / "build" / "qemu-src"
SIMPLETRACE = QEMU_SRC / "scripts" / "simpletrace.py"
TRACE_EVENTS = SHARED / "trace-events-all"
SOURCES = {
    "flatview": SHARED / "pc-boot.simpletrace",
    "mixed": SHARED / "pc-bridges-mixed.simpletrace",
}
DEFAULT_RECORDS = 1_400_000
DROPPED_EVENT_ID = 0xFFFF_FFFF_FFFF_FFFE
DEB_SRC = """Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
DEB_SRC_FILE = Path("/etc/apt/sources.list.d/qtrace-deb-src.sources")

# The child first reads the small real trace once so one-time start-up work (imports, polars'
# thread pool, first use of each kernel) is not billed to the large file's decoding.
QTRACE_CHILD = """
import json, sys, time
from pathlib import Path
from qtrace.events import ALL_EVENTS, EventSelection
from qtrace.parsers import simple
from qtrace.parsers.source import open_input
selection = ALL_EVENTS if sys.argv[4] == "all" else EventSelection()
with open_input(sys.argv[3]) as opened:
    simple.parse(opened, selection, Path(sys.argv[2]))
best = best_cpu = float("inf")
with open_input(sys.argv[1]) as opened:
    for _ in range(3):
        start, cpu = time.perf_counter(), time.process_time()
        parsed = simple.parse(opened, selection, Path(sys.argv[2]))
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        rows = parsed.events.height
        del parsed
# VmHWM, not ru_maxrss: ru_maxrss also counts the parent's pages shared at fork time.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": best, "cpu": best_cpu, "rows": rows,
                  "peak_rss_kb": int(hwm.split()[1])}))
"""


def _sh(cmd: list[str], cwd: Path | None = None) -> bool:
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, cwd=cwd, check=False).returncode == 0


def ensure_simpletrace() -> Path:
    """QEMU's scripts/simpletrace.py (with its tracetool package), fetched once if missing."""
    if SIMPLETRACE.is_file():
        return SIMPLETRACE
    download = QEMU_SRC / "dl"
    download.mkdir(parents=True, exist_ok=True)
    fetch = ["apt-get", "source", "--download-only", "-qq", "qemu"]
    if not _sh(fetch, cwd=download):
        if os.geteuid() != 0:
            raise SystemExit("cannot fetch QEMU's source: add a bookworm deb-src entry (root)")
        DEB_SRC_FILE.write_text(DEB_SRC)
        _sh(["flock", "/tmp/apt.lock", "apt-get", "update", "-qq"])
        if not _sh(fetch, cwd=download):
            raise SystemExit("apt-get source qemu failed: QEMU's simpletrace.py is unavailable")
    tarball = next(download.glob("qemu_*.orig.tar.xz"))
    members = ["scripts/simpletrace.py", "scripts/tracetool"]
    top = subprocess.run(
        ["tar", "-tJf", str(tarball)], capture_output=True, text=True, check=True
    ).stdout.split("/", 1)[0]
    if not _sh(
        ["tar", "-xJf", str(tarball), "--strip-components=1", "-C", str(QEMU_SRC)]
        + [f"{top}/{m}" for m in members]
    ):
        raise SystemExit(f"could not extract simpletrace.py from {tarball}")
    return SIMPLETRACE


def _split_records(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header plus mapping records, and each event record's bytes (little-endian file)."""
    off = 24
    while struct.unpack_from("<Q", data, off)[0] == 0:
        (name_len,) = struct.unpack_from("<I", data, off + 16)
        off += 20 + name_len
    head, records = data[:off], []
    while off < len(data):
        (length,) = struct.unpack_from("<I", data, off + 24)
        records.append(data[off : off + 8 + length])
        off += 8 + length
    return head, records


def _dropped_after(record: bytes, lost: int) -> bytes:
    """A dropped-events record as QEMU writes one after ``record``: same time and pid."""
    _type, _eid, ts, _length, pid = struct.unpack_from("<QQQII", record)
    return struct.pack("<QQQIIQ", 1, DROPPED_EVENT_ID, ts, 32, pid, lost)


def build_trace(source: Path, records: int, out: Path, dropped: bool) -> int:
    """Write ``records`` event records after the source's mappings: its records repeated,
    with a dropped-events record between repetitions when ``dropped``. Returns how many
    dropped-events records it holds."""
    head, body = _split_records(source.read_bytes())
    block = b"".join(body)
    written = drops = 0
    with out.open("wb") as fh:
        fh.write(head)
        while written < records:
            if written + len(body) <= records:
                fh.write(block)
                written += len(body)
            else:
                fh.write(b"".join(body[: records - written]))
                written = records
            if dropped and written < records:
                drops += 1
                fh.write(_dropped_after(body[-1], 37 + drops))
                written += 1
    return drops


def _run(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, every thread) of a command, start to exit; its
    output to /dev/null."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.DEVNULL, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return seconds, usage.ru_utime + usage.ru_stime


def _commands(trace: Path, workdir: Path, other: Path | None) -> dict[str, list[str]]:
    qtrace = str(Path(sys.executable).with_name("qtrace"))
    parquet = str(workdir / "out.parquet")
    te = ["--trace-events", str(TRACE_EVENTS)]
    others = {}
    if other is not None:  # another install of qtrace (e.g. the main branch's), for a before/after
        others = {
            f"{other} events --all (parquet)": [
                str(other), "events", str(trace), "--all", *te, "-f", "parquet", "-o", parquet,
            ],
            f"{other} events (FlatView, parquet)": [
                str(other), "events", str(trace), "-f", "parquet", "-o", parquet,
            ],
        }  # fmt: skip
    return others | {
        "simpletrace.py": [sys.executable, str(SIMPLETRACE), str(TRACE_EVENTS), str(trace)],
        "qtrace events --all (parquet)": [
            qtrace, "events", str(trace), "--all", *te, "-f", "parquet", "-o", parquet,
        ],
        "qtrace events --all (csv to stdout)": [qtrace, "events", str(trace), "--all", *te],
        "qtrace events (FlatView, parquet)": [
            qtrace, "events", str(trace), "-f", "parquet", "-o", parquet,
        ],
        # The floor under every command above: the same command on the 200 KB real trace the
        # big one is made of (start-up, python, polars, numpy, the reader's modules).
        "floor: qtrace events (FlatView, parquet), 200 KB trace": [
            qtrace, "events", str(SOURCES["flatview"]), "-f", "parquet", "-o", parquet,
        ],
    }  # fmt: skip


def _in_process(trace: Path, events: str) -> dict[str, float]:
    warm_up = SOURCES["flatview"]
    cmd = [sys.executable, "-c", QTRACE_CHILD, str(trace), str(TRACE_EVENTS), str(warm_up), events]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def bench_kind(
    kind: str, records: int, repeat: int, workdir: Path, other: Path | None = None
) -> dict[str, object]:
    trace = workdir / f"{kind}.simpletrace"
    drops = build_trace(SOURCES[kind], records, trace, dropped=kind == "mixed")
    commands = _commands(trace, workdir, other)
    commands = {"simpletrace.py": commands.pop("simpletrace.py"), **commands}
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):  # in turns: load from elsewhere falls on every command alike
        for name, cmd in commands.items():
            cwd = SIMPLETRACE.parent if name == "simpletrace.py" else None
            wall, used = _run(cmd, cwd=cwd)
            times[name].append(wall)
            cpu[name].append(used)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "records": records,
        "dropped_records": drops,
        "file_mib": trace.stat().st_size / 2**20,
        "commands": {name: " ".join(cmd) for name, cmd in commands.items()},
        "seconds": times,
        "cpu_seconds": cpu,
        "median_s": medians,
        "median_cpu_s": cpu_medians,
        "ratio_to_simpletrace": {n: medians["simpletrace.py"] / s for n, s in medians.items()},
        "cpu_ratio_to_simpletrace": {
            n: cpu_medians["simpletrace.py"] / s for n, s in cpu_medians.items()
        },
        "in_process_all": _in_process(trace, "all"),
        "in_process_flatview": _in_process(trace, "flatview"),
    }


def _report(kind: str, r: dict[str, object]) -> None:
    medians, cpu = r["median_s"], r["median_cpu_s"]
    ratios, cpu_ratios = r["ratio_to_simpletrace"], r["cpu_ratio_to_simpletrace"]
    seconds = r["seconds"]
    assert isinstance(medians, dict) and isinstance(ratios, dict) and isinstance(seconds, dict)
    assert isinstance(cpu, dict) and isinstance(cpu_ratios, dict)
    print(
        f"simple/{kind}: {r['records']:,} records ({r['dropped_records']} dropped-events "
        f"records), {r['file_mib']:.0f} MiB; median of {len(seconds['simpletrace.py'])} turns"
    )
    width = max(len(name) for name in medians)
    print(
        f"  {'command':{width}s} {'wall s (range)':>20s} {'ratio':>6s} {'CPU s':>7s} {'ratio':>6s}"
    )
    for name, median in medians.items():
        spread = f"{median:.2f} ({min(seconds[name]):.2f}-{max(seconds[name]):.2f})"
        print(
            f"  {name:{width}s} {spread:>20s} {ratios[name]:5.1f}x {cpu[name]:7.2f} "
            f"{cpu_ratios[name]:5.1f}x"
        )
    for selection in ("all", "flatview"):
        child = r[f"in_process_{selection}"]
        assert isinstance(child, dict)
        print(
            f"  in process, parse only ({selection}): {child['seconds']:.3f} s "
            f"(CPU {child['cpu']:.3f} s), {child['rows']:,} rows, peak RSS "
            f"{child['peak_rss_kb'] / 1024:.0f} MiB"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="event records")
    parser.add_argument("--kind", choices=("flatview", "mixed", "both"), default="mixed")
    parser.add_argument("--repeat", type=int, default=5, help="turns of every command")
    parser.add_argument("--workdir", type=Path, help="where the large traces go (a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--other-qtrace", type=Path, help="also time this qtrace (another install) in turns"
    )
    args = parser.parse_args(argv)
    ensure_simpletrace()
    kinds = ("mixed", "flatview") if args.kind == "both" else (args.kind,)
    results = {}
    with tempfile.TemporaryDirectory(prefix="qtrace-bench-", dir=args.workdir) as tmp:
        for kind in kinds:
            results[kind] = bench_kind(
                kind, args.records, args.repeat, Path(tmp), args.other_qtrace
            )
            _report(kind, results[kind])
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
