"""Input-opening benchmark: decompression speed and memory, and ``qtrace events`` output memory.

Measured as a user runs the commands, against baselines from the same run:

- decoding a compressed log (gzip, zstd) to a temporary file through qtrace's one opening
  path, against the system's ``gzip -dc`` / ``zstd -dc`` into a file (target: within 2x);
- peak memory decoding a gzip and a zstd of 1 GiB of zeros (about 1 MB and 33 KB on disk),
  against a Python process that only imports qtrace (target: under 64 MiB more);
- peak memory of ``qtrace events LOG`` writing csv to a pipe, against ``qtrace events LOG
  -f parquet -o FILE`` (the same events table, no text): the text is written a batch at a
  time, so the two should be close (target: under 1.3x).

    python bench/bench_source.py --log-mb 400
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "traces" / "qemu10-pc-bridges-ts.log"
QTRACE = Path(sys.executable).parent / "qtrace"
DECODE = """
import sys
from qtrace.parsers.source import open_input
with open_input(sys.argv[1]) as opened:
    pass
"""


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _peak(command: list[str]) -> int:
    """Peak RSS (KiB) of ``command``, whose standard output is a pipe read here."""
    with subprocess.Popen(
        ["/usr/bin/time", "-f", "%M", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        while child.stdout.read(1 << 20):
            pass
        err = child.stderr.read().decode()
    if child.returncode != 0:
        raise RuntimeError(f"{command} failed: {err}")
    return int(err.strip().splitlines()[-1])


def _best(command: list[str], repeats: int) -> float:
    return min(_seconds(command) for _ in range(repeats))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-mb", type=int, default=400, help="size of the log to build")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(list(argv))
    if not Path("/usr/bin/time").exists() or shutil.which("zstd") is None:
        print("needs /usr/bin/time and zstd")
        return 1
    work = Path(tempfile.mkdtemp(prefix="qtrace-bench-source-"))
    try:
        log = work / "big.log"
        sample = SAMPLE.read_bytes()
        with log.open("wb") as out:
            for _ in range((args.log_mb << 20) // len(sample)):
                out.write(sample)
        print(f"log: {log.stat().st_size >> 20} MiB (the real QEMU 10 log, repeated)")
        packed = {"gzip": work / "big.log.gz", "zstd": work / "big.log.zst"}
        subprocess.run(["gzip", "-k", "-1", str(log)], check=True)
        subprocess.run(["zstd", "-q", "-k", str(log), "-o", str(packed["zstd"])], check=True)
        # Both write the decoded bytes to a file; Python's start and imports are taken off.
        start = _best([sys.executable, "-c", "import qtrace.parsers.source"], args.repeats)
        for kind, path in packed.items():
            ours = _best([sys.executable, "-c", DECODE, str(path)], args.repeats) - start
            theirs = _best(["sh", "-c", f"{kind} -dc '{path}' > '{work}/out'"], args.repeats)
            print(
                f"decode {kind}: {ours:.2f} s against {kind} -dc {theirs:.2f} s: "
                f"{ours / theirs:.2f}x (target <= 2x)"
            )
        zeros = work / "zeros.gz"
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        with zeros.open("wb") as out:
            for _ in range(1024):
                out.write(packer.compress(b"\0" * (1 << 20)))
            out.write(packer.flush())
        zeros_zst = work / "zeros.zst"
        with zeros_zst.open("wb") as out:
            source = subprocess.Popen(
                ["head", "-c", str(1 << 30), "/dev/zero"], stdout=subprocess.PIPE
            )
            subprocess.run(["zstd", "-q", "-c"], stdin=source.stdout, stdout=out, check=True)
            source.wait()
        base = _peak([sys.executable, "-c", "import qtrace.parsers.source"])
        for path in (zeros, zeros_zst):
            peak = _peak([sys.executable, "-c", DECODE, str(path)])
            print(
                f"decode 1 GiB of zeros ({path.suffix}): peak {peak >> 10} MiB, "
                f"{(peak - base) >> 10} MiB over the import alone (target < 64 MiB)"
            )
        parquet = _peak(
            [str(QTRACE), "events", str(log), "-f", "parquet", "-o", str(work / "e.pq")]
        )
        text = _peak([str(QTRACE), "events", str(log)])
        print(
            f"events csv to a pipe: peak {text >> 10} MiB against {parquet >> 10} MiB for "
            f"parquet: {text / parquet:.2f}x (target < 1.3x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
