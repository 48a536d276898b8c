"""Benchmark: qtrace's simple-backend reader against QEMU's own scripts/simpletrace.py.

Builds large binary traces by repeating the real records of ../shared/traces (a FlatView-only
one from pc-boot, a mixed one with string arguments from pc-bridges-mixed), then decodes each
with both tools in child processes and reports records/s, the ratio and peak RSS.

QEMU's reader comes from Debian's qemu source package (bookworm, QEMU 7.2), cached under
build/qemu-src (gitignored). When it is missing the bench fetches it the way a person would::

    # once, as root: a deb-src entry for bookworm, then
    flock /tmp/apt.lock apt-get update
    cd build/qemu-src/dl && apt-get source --download-only qemu
    tar -xJf qemu_*.orig.tar.xz --strip-components=1 -C .. \\
        qemu-7.2.0/scripts/simpletrace.py qemu-7.2.0/scripts/tracetool

Two comparisons, both with wall and CPU seconds (CPU counts every thread; the machine may be
shared, so compare figures of one run only):

- decoding: qtrace's ``parse`` timed inside its child after a warm-up read of the small real
  trace (the first large read is the headline; reading the same file again shows the steady
  state), against simpletrace.py's wall time less its wall time on a header-only file
  (interpreter start and trace-events-all parsing);
- end to end, what a user waits for: ``qtrace events FILE -f parquet -o out.parquet`` (with
  ``--all`` for every event) against ``simpletrace.py trace-events-all FILE > /dev/null``,
  each a whole process from start to exit.

Run: ``python bench/bench_simple.py [--records N] [--kind flatview|mixed|both] [--json]``
(default 2,000,000 records per trace; about a minute in all).
"""

from __future__ import annotations

import argparse
import json
import os
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
import json, resource, sys, time
from pathlib import Path
from qtrace.events import ALL_EVENTS, EventSelection
from qtrace.parsers import simple
from qtrace.parsers.source import open_input
selection = ALL_EVENTS if sys.argv[4] == "all" else EventSelection()
with open_input(sys.argv[3]) as opened:
    simple.parse(opened, selection, Path(sys.argv[2]))
with open_input(sys.argv[1]) as opened:
    start, cpu = time.perf_counter(), time.process_time()
    parsed = simple.parse(opened, selection, Path(sys.argv[2]))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # VmHWM, not ru_maxrss: ru_maxrss also counts the parent's pages shared at fork time.
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    rows, peak_kb = parsed.events.height, int(hwm.split()[1])
    del parsed
    steady = seconds
    for _ in range(2):  # the same file again: steady state, as in a batch of many files
        start = time.perf_counter()
        simple.parse(opened, selection, Path(sys.argv[2]))
        steady = min(steady, time.perf_counter() - start)
print(json.dumps({"seconds": seconds, "cpu": cpu, "steady": steady, "rows": rows,
                  "maxrss_kb": peak_kb}))
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


def build_trace(source: Path, records: int, out: Path) -> int:
    """Write ``records`` event records (the source's, repeated) after its mapping block."""
    head, body = _split_records(source.read_bytes())
    block = b"".join(body)
    with out.open("wb") as fh:
        fh.write(head)
        whole, rest = divmod(records, len(body))
        for _ in range(whole):
            fh.write(block)
        fh.write(b"".join(body[:rest]))
    return records


def _run_qtrace(trace: Path, events: str = "all") -> dict[str, float]:
    """Decode ``trace`` in a child; ``events`` is "all" or "flatview" (qtrace's default)."""
    warm_up = SOURCES["flatview"]
    cmd = [sys.executable, "-c", QTRACE_CHILD, str(trace), str(TRACE_EVENTS), str(warm_up), events]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _run_process(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of a command, its output to /dev/null."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(cmd, stdout=devnull, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _run_simpletrace(trace: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of simpletrace.py printing ``trace``."""
    cmd = [sys.executable, str(SIMPLETRACE), str(TRACE_EVENTS), str(trace)]
    return _run_process(cmd, cwd=SIMPLETRACE.parent)


def _run_cli(trace: Path, out: Path, every_event: bool) -> tuple[float, float, int]:
    """``qtrace events TRACE -f parquet -o OUT``: what a user runs, start to exit."""
    qtrace = Path(sys.executable).with_name("qtrace")
    cmd = [str(qtrace), "events", str(trace), "-f", "parquet", "-o", str(out)]
    cmd += ["--trace-events", str(TRACE_EVENTS)] + (["--all"] if every_event else [])
    return _run_process(cmd)


def bench_kind(kind: str, records: int, workdir: Path) -> dict[str, float]:
    trace = workdir / f"{kind}.simpletrace"
    build_trace(SOURCES[kind], records, trace)
    header_only = workdir / f"{kind}-empty.simpletrace"
    build_trace(SOURCES[kind], 0, header_only)
    qtrace = _run_qtrace(trace)
    if qtrace["rows"] != records:
        raise SystemExit(f"qtrace read {qtrace['rows']} records of {records}")
    startup_s, startup_cpu_s, _ = _run_simpletrace(header_only)  # interpreter + decls
    st_wall_s, st_cpu_s, st_rss_kb = _run_simpletrace(trace)
    st_decode_s = max(st_wall_s - startup_s, 1e-9)
    cli_s, cli_cpu_s, cli_rss_kb = _run_cli(trace, workdir / "out.parquet", every_event=True)
    # What `qtrace analyze` does by default on such a file: keep the FlatView events only.
    default = _run_qtrace(trace, "flatview") if kind == "mixed" else qtrace
    return {
        "records": records,
        "file_mib": trace.stat().st_size / 2**20,
        "qtrace_s": qtrace["seconds"],
        "qtrace_rec_per_s": records / qtrace["seconds"],
        "qtrace_peak_rss_mib": qtrace["maxrss_kb"] / 1024,
        "simpletrace_s": st_decode_s,
        "simpletrace_rec_per_s": records / st_decode_s,
        "simpletrace_peak_rss_mib": st_rss_kb / 1024,
        "ratio": st_decode_s / qtrace["seconds"],
        "qtrace_steady_s": qtrace["steady"],
        "ratio_steady": st_decode_s / qtrace["steady"],
        "qtrace_default_selection_s": default["seconds"],
        "ratio_default_selection": st_decode_s / default["seconds"],
        "qtrace_cpu_s": qtrace["cpu"],
        "simpletrace_cpu_s": st_cpu_s - startup_cpu_s,
        "ratio_cpu": (st_cpu_s - startup_cpu_s) / qtrace["cpu"],
        "cli_s": cli_s,
        "cli_cpu_s": cli_cpu_s,
        "cli_peak_rss_mib": cli_rss_kb / 1024,
        "simpletrace_total_s": st_wall_s,
        "simpletrace_total_cpu_s": st_cpu_s,
        "ratio_end_to_end": st_wall_s / cli_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one line per trace kind (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000, help="event records per trace")
    parser.add_argument("--kind", choices=("flatview", "mixed", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    ensure_simpletrace()
    kinds = ("flatview", "mixed") if args.kind == "both" else (args.kind,)
    results = {}
    with tempfile.TemporaryDirectory(prefix="qtrace-bench-") as tmp:
        for kind in kinds:
            r = bench_kind(kind, args.records, Path(tmp))
            results[kind] = r
            print(
                f"simple/{kind}: {r['records']:,} records ({r['file_mib']:.0f} MiB): "
                f"qtrace {r['qtrace_s']:.2f} s = {r['qtrace_rec_per_s'] / 1e6:.2f} M rec/s "
                f"(peak RSS {r['qtrace_peak_rss_mib']:.0f} MiB); simpletrace.py "
                f"{r['simpletrace_s']:.1f} s = {r['simpletrace_rec_per_s'] / 1e3:.0f} k rec/s "
                f"(peak RSS {r['simpletrace_peak_rss_mib']:.0f} MiB); ratio {r['ratio']:.0f}x "
                f"(first read in a process; {r['ratio_steady']:.0f}x when reading again); "
                f"CPU {r['qtrace_cpu_s']:.2f} s vs {r['simpletrace_cpu_s']:.1f} s "
                f"({r['ratio_cpu']:.0f}x)"
            )
            print(
                f"simple/{kind}, end to end: qtrace events -f parquet {r['cli_s']:.2f} s "
                f"(CPU {r['cli_cpu_s']:.2f} s, peak RSS {r['cli_peak_rss_mib']:.0f} MiB); "
                f"simpletrace.py > /dev/null {r['simpletrace_total_s']:.1f} s "
                f"(CPU {r['simpletrace_total_cpu_s']:.1f} s); ratio {r['ratio_end_to_end']:.0f}x"
            )
            if kind == "mixed":
                print(
                    f"simple/{kind}, FlatView events only (qtrace's default): "
                    f"qtrace {r['qtrace_default_selection_s']:.2f} s; "
                    f"ratio {r['ratio_default_selection']:.0f}x"
                )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
