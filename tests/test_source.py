"""One input-opening path for every door: decompression, limits, salvage, pipes, odd names."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
import zstandard
from qtrace.parsers.decompress import PIECE_BYTES, DecodedReader
from qtrace.parsers.source import InputTooLarge, open_input
from typer.testing import CliRunner

import qtrace
from qtrace.batch.runner import run_batch
from qtrace.cli import app
from qtrace.errors import InputError
from qtrace.events import UNREADABLE
from qtrace.paths import display

LOG = "qemu10-pc-bridges-ts.log"
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bz2": bz2.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
SUFFIX = {"gzip": "gz", "xz": "xz", "bz2": "bz2", "zstd": "zst"}
runner = CliRunner()


def _cut(path: Path, kind: str, fraction: float, tmp_path: Path) -> Path:
    packed = COMPRESS[kind](path.read_bytes())
    cut = tmp_path / f"{path.name}.{SUFFIX[kind]}"
    cut.write_bytes(packed[: int(len(packed) * fraction)])
    return cut


# ------------------------------------------------------------------ one path, every door


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_a_cut_stream_reads_the_same_through_read_trace_and_batch(
    kind: str, shared_traces: Path, tmp_path: Path
) -> None:
    cut = _cut(shared_traces / LOG, kind, 0.6, tmp_path)
    trace = qtrace.read_trace(cut)
    assert trace.events.height > 1000  # salvaged, not refused
    [warning] = [w for w in trace.warnings if "stream" in w]
    assert warning.startswith(f"{cut}: {kind} stream is truncated after ")
    result = run_batch([str(cut)], tmp_path / "out", jobs=1, dashboards=False)
    [record] = result.records
    assert record["error"] is None, record["error"]
    assert warning in record["warnings"]
    analysis = qtrace.analyze(trace)
    assert record["events"] == qtrace.to_json(analysis)["events"]
    batch_views = pl.read_parquet(tmp_path / "out" / "views.parquet").drop("artifact")
    assert batch_views.equals(analysis.views.select(batch_views.columns))


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_a_cut_stream_ends_in_a_marker_row(kind: str, shared_traces: Path, tmp_path: Path) -> None:
    plain = (shared_traces / LOG).read_bytes()
    cut = _cut(shared_traces / LOG, kind, 0.6, tmp_path)
    events = qtrace.read_events(cut, events="*")
    last = events.row(-1, named=True)
    with open_input(str(cut)) as opened:
        decoded = opened.path.read_bytes()
    assert plain.startswith(decoded) and 0 < len(decoded) < len(plain)
    assert last["event"] == UNREADABLE
    assert last["args"] == f"{kind} stream truncated after {len(decoded)} bytes"
    assert last["line"] == decoded.count(b"\n") + 1  # the line the cut is in
    assert last["seq"] == events.height - 1 and last["view"] is None
    assert last["ts_ns"] == events["ts_ns"].max()  # a merge by time keeps it at the end
    # Every line before the cut line was read as in the whole file.
    whole = qtrace.read_events(shared_traces / LOG, events="*")
    before = whole.filter(pl.col("line") < last["line"]).drop("source")
    assert events.filter(pl.col("line") < last["line"]).drop("source").equals(before)


def test_a_zstd_stream_cut_inside_its_first_block_is_refused_in_one_line(
    shared_traces: Path, tmp_path: Path
) -> None:
    cut = _cut(shared_traces / LOG, "zstd", 0.5, tmp_path)  # zstd decodes whole blocks only
    with pytest.raises(InputError, match="zstd stream is truncated before any decoded byte"):
        qtrace.read_trace(cut)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_concatenated_members_and_zero_padding(kind: str, shared_traces: Path) -> None:
    plain = (shared_traces / LOG).read_bytes()
    half = plain.index(b"\n", len(plain) // 2) + 1
    packed = COMPRESS[kind](plain[:half]) + COMPRESS[kind](plain[half:]) + b"\0" * 512
    reader = DecodedReader(_Chunks(packed, 1000), kind)
    assert b"".join(reader.pieces()) == plain
    assert reader.damage is None and reader.decoded == len(plain)


class _Chunks:
    """A stream that hands out at most ``most`` bytes a read, as a pipe does."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data = data
        self._at = 0
        self._most = most

    def read(self, size: int = -1, /) -> bytes:
        size = self._most if size < 0 else min(size, self._most)
        out = self._data[self._at : self._at + size]
        self._at += len(out)
        return out


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_a_bomb_decodes_in_bounded_pieces_and_stops_at_the_limit(kind: str, tmp_path: Path) -> None:
    zeros = b"\0" * (48 << 20)
    packed = COMPRESS[kind](zeros)
    assert len(packed) < len(zeros) // 100
    reader = DecodedReader(_Chunks(packed, 1 << 16), kind)
    sizes = [len(piece) for piece in reader.pieces()]
    assert sum(sizes) == len(zeros) and max(sizes) <= PIECE_BYTES
    bomb = tmp_path / "bomb"
    bomb.write_bytes(packed)
    with pytest.raises(InputTooLarge, match=r"decodes to more than the input limit of 1000000"):
        qtrace.read_trace(bomb, max_input_bytes=1_000_000)


def test_the_limit_applies_to_plain_files_and_streams(samples: Path, tmp_path: Path) -> None:
    log = samples / "pc-boot-ts.log"
    size = log.stat().st_size
    assert qtrace.read_trace(log, max_input_bytes=size).events.height > 0
    with pytest.raises(InputTooLarge, match=f"is {size} bytes, more than the input limit"):
        qtrace.read_trace(log, max_input_bytes=size - 1)
    fifo = _fifo_fed(tmp_path, log.read_bytes())
    with pytest.raises(InputTooLarge, match="holds more than the input limit of 1000 bytes"):
        qtrace.read_trace(next(fifo), max_input_bytes=1000)


# ------------------------------------------------------------------- pipes and odd files


def _fifo_fed(tmp_path: Path, data: bytes) -> Iterator[Path]:
    """A named pipe, and a thread that writes ``data`` into it once a reader opens it.

    A reader that opens the pipe again gets an empty stream rather than waiting forever
    for a writer, so a reader that does so fails instead of hanging the tests.
    """
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        payload = data
        while True:  # a daemon thread: it ends with the tests
            # BrokenPipeError: the reader stopped at its limit.
            with contextlib.suppress(BrokenPipeError), fifo.open("wb") as out:
                out.write(payload)
            payload = b""

    threading.Thread(target=feed, daemon=True).start()
    yield fifo


@pytest.mark.parametrize("kind", [None, "gzip"])
def test_a_named_pipe_is_read_as_a_stream(kind: str | None, samples: Path, tmp_path: Path) -> None:
    log = samples / "pc-boot-ts.log"
    data = log.read_bytes() if kind is None else COMPRESS[kind](log.read_bytes())
    fifo = next(_fifo_fed(tmp_path, data))
    piped = qtrace.read_events(fifo).drop("source")
    assert piped.equals(qtrace.read_events(log).drop("source"))


def test_analyze_reads_a_process_substitution(samples: Path) -> None:
    # The user's own command: `qtrace analyze <(zcat trace.gz)`, through bash and the CLI.
    log = samples / "pc-boot-ts.log"
    qtrace_bin = Path(sys.executable).parent / "qtrace"
    command = f"'{qtrace_bin}' analyze --format json <(gzip -c '{log}' | gzip -dc)"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    direct = runner.invoke(app, ["analyze", "--format", "json", str(log)])
    piped, whole = json.loads(done.stdout), json.loads(direct.stdout)
    assert piped["events"] == whole["events"] and piped["views"] == whole["views"]


def test_odd_files_say_what_they_are(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    empty_pipe = next(_fifo_fed(tmp_path, b""))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "qmp.sock"))
    expected = {
        "loop": "a symbolic link loop (too many levels of symbolic links)",
        "dangling": "a symbolic link to a missing file",
        "missing": "no such file",
        empty_pipe.name: "the named pipe gave no bytes",
        "qmp.sock": "is a socket, not a trace file",
        ".": "is a directory, not a trace file",
    }
    try:
        for name, message in expected.items():
            result = runner.invoke(app, ["analyze", str(tmp_path / name)])
            assert result.exit_code == 3
            assert result.stderr == f"qtrace: error: {tmp_path / name}: {message}\n"
    finally:
        sock.close()


def test_standard_input_gzip_and_empty() -> None:
    data = (Path(__file__).parents[1] / "samples" / "pc-boot-ts.log").read_bytes()
    result = runner.invoke(app, ["events", "-"], input=gzip.compress(data))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1 + 257 + 253 + 253
    assert ",<stdin>," in result.stdout
    result = runner.invoke(app, ["analyze", "-"], input=b"")
    assert result.exit_code == 3
    assert result.stderr == "qtrace: error: <stdin>: standard input gave no bytes\n"


def test_the_same_file_named_twice_is_read_once(samples: Path, tmp_path: Path) -> None:
    log = samples / "pc-hotplug-ts.log"
    alias = tmp_path / "alias.log"
    alias.symlink_to(log)
    once = qtrace.read_trace(log)
    twice = qtrace.read_trace([log, alias, log])
    assert twice.events.equals(once.events)
    assert twice.paths == [str(log)]
    assert twice.warnings[:2] == [
        f"{alias} is the same file as {log}: read once",
        f"{log} is named twice: read once",
    ]
    result = runner.invoke(app, ["analyze", "-f", "json", str(log), str(log)])
    alone = runner.invoke(app, ["analyze", "-f", "json", str(log)])
    assert result.exit_code == alone.exit_code
    assert json.loads(result.stdout)["anomalies"] == json.loads(alone.stdout)["anomalies"]
    assert f"warning: {log} is named twice: read once" in result.stderr


# ------------------------------------------------------------------- names that are bytes


LATIN1_NAME = os.fsdecode(b"caf\xe9.log")  # as Python hands over a Latin-1 name from argv


def test_display_escapes_what_cannot_be_shown() -> None:
    assert display("ci/run 1/trace.log") == "ci/run 1/trace.log"
    assert display(LATIN1_NAME) == display(b"caf\xe9.log") == "caf\\xe9.log"
    assert display("a\x1b[31mb\u202ec\nd\te") == "a\\x1b[31mb\\u202ec\\nd\\te"
    assert display("\ud800") == "\\ud800"  # a surrogate no file name can hold
    assert display(display(LATIN1_NAME)) == display(LATIN1_NAME)


def test_a_latin1_file_name_reads_in_every_command(samples: Path, tmp_path: Path) -> None:
    odd = tmp_path / LATIN1_NAME
    odd.write_bytes((samples / "pc-boot-ts.log").read_bytes())
    shown = display(odd)
    assert shown.endswith("caf\\xe9.log")
    events = runner.invoke(app, ["events", str(odd)])
    assert events.exit_code == 0, events.stderr
    assert f",{shown}," in events.stdout
    analyze = runner.invoke(app, ["analyze", "-f", "json", str(odd)])
    assert analyze.exit_code == 0, analyze.stderr
    assert json.loads(analyze.stdout)["source"]["paths"] == [shown]
    page = tmp_path / "page.html"
    dashboard = runner.invoke(app, ["dashboard", str(odd), "-o", str(page)])
    assert dashboard.exit_code == 0, dashboard.stderr
    assert f"<h1>qtrace · {shown}</h1>" in page.read_text(encoding="utf-8")
    packed = tmp_path / os.fsdecode(b"r\xe9sum\xe9.log.gz")
    packed.write_bytes(gzip.compress(odd.read_bytes()))
    assert qtrace.read_events(packed)["source"][0] == display(packed)


def test_a_latin1_name_costs_no_artifact_of_a_batch(samples: Path, tmp_path: Path) -> None:
    tree = tmp_path / "ci"
    tree.mkdir()
    (tree / LATIN1_NAME).write_bytes((samples / "pc-boot-ts.log").read_bytes())
    (tree / "ok.log").write_bytes((samples / "pc-hotplug-ts.log").read_bytes())
    result = runner.invoke(app, ["batch", str(tree), "--out", str(tmp_path / "out"), "-j", "1"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    names = {a["artifact"]: a["error"] for a in summary["artifacts"]}
    assert names == {display(tree / LATIN1_NAME): None, str(tree / "ok.log"): None}
    assert "caf\\xe9.log" in (tmp_path / "out" / "junit.xml").read_text(encoding="utf-8")
    # summary.md escapes the display's backslash for Markdown; the fleet page shows it.
    assert "caf\\\\xe9.log" in (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "caf\\xe9.log" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_control_characters_in_a_name_reach_no_batch_output(samples: Path, tmp_path: Path) -> None:
    tree = tmp_path / "ci"
    tree.mkdir()
    hostile = tree / "a\x1b[31mb\u202ec.log"  # a terminal colour and a bidi override
    hostile.write_bytes((samples / "pc-boot-ts.log").read_bytes())
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(tree), "--out", str(out), "-j", "1"])
    assert result.exit_code == 0, result.stderr
    for name in ("summary.json", "summary.md", "junit.xml", "index.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "\x1b" not in text and "\u202e" not in text, name
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [a["artifact"] for a in summary["artifacts"]] == [display(hostile)]
    assert display(hostile).endswith("a\\x1b[31mb\\u202ec.log")


# ----------------------------------------------------------------- a file that shrinks


class _Shrinking:
    """A real file that is cut to ``keep`` bytes after its first read, as copytruncate does."""

    def __init__(self, path: Path, keep: int) -> None:
        self._fh = path.open("rb")
        self._path = path
        self._keep = keep
        self.reads = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._fh.read(size)
        self.reads += 1
        if self.reads == 1:
            os.truncate(self._path, self._keep)
        return data

    def close(self) -> None:
        self._fh.close()


@pytest.mark.parametrize("kind", ["gzip", "xz", "zstd"])
def test_a_compressed_file_that_shrinks_while_decoded_is_salvaged(
    kind: str, shared_traces: Path, tmp_path: Path
) -> None:
    plain = (shared_traces / "pc-bridges-mixed.simpletrace").read_bytes()
    packed = tmp_path / "trace.z"
    packed.write_bytes(COMPRESS[kind](plain))
    assert packed.stat().st_size > 2 << 16  # read a piece at a time
    shrinking = _Shrinking(packed, 1 << 16)
    reader = DecodedReader(shrinking, kind)
    decoded = b"".join(reader.pieces())
    shrinking.close()
    assert shrinking.reads > 1 and packed.stat().st_size == 1 << 16
    assert reader.damage == "truncated"
    assert 0 < len(decoded) < len(plain) and plain.startswith(decoded)


SHRINK_SCRIPT = """
import os, sys, threading
import qtrace
from qtrace.errors import InputError
from qtrace.parsers.log import reader

path = sys.argv[1]
armed = threading.Event()

def cut_when_open():
    # Cut the file the moment the polars reader has it open (the full scan, not a sniff).
    target = os.path.realpath(path)
    armed.wait()
    while True:
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == target:
                    os.truncate(path, 1000)
                    return
            except OSError:
                pass

threading.Thread(target=cut_when_open, daemon=True).start()
scan = reader._one_pass

def armed_scan(*args, **kwargs):
    armed.set()
    return scan(*args, **kwargs)

reader._one_pass = armed_scan
try:
    trace = qtrace.read_trace(path)
except InputError as error:
    print("error:", error)
else:
    print("read:", trace.events.height, "|".join(trace.warnings))
"""


@pytest.mark.parametrize("junk", [b"", b"junk \xff\xfe line\n"], ids=["utf8", "lossy"])
def test_a_log_that_shrinks_while_polars_reads_it(
    junk: bytes, samples: Path, tmp_path: Path
) -> None:
    log = tmp_path / "qemu.log"
    with log.open("wb") as out:
        out.write(junk)
        data = (samples / "pc-hotplug-ts.log").read_bytes()
        for _ in range((20 << 20) // len(data)):
            out.write(data)
    size = log.stat().st_size
    env = {**os.environ, "QTRACE_NO_FASTLOG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SHRINK_SCRIPT, str(log)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr  # no signal, no traceback
    shrank = f"{log}: the file shrank from {size} to 1000 bytes while it was read"
    # Cut mid-read: a one-line error; cut after polars had every byte: a warning.
    assert done.stdout.startswith((f"error: {shrank}", "read: ")), done.stdout
    assert shrank in done.stdout
