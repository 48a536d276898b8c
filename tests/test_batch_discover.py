"""Batch inputs: files, directories, globs, archives; hostile names and sizes stay harmless."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import random
import re
import socket
import stat
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from qtrace.parsers.source import InputTooLarge, copy_limited, open_input

from qtrace.batch.archive import archive_kind
from qtrace.batch.artifact import Discovery, file_stem
from qtrace.batch.discover import discover, group_key
from qtrace.batch.task import TaskOptions, run_task
from qtrace.errors import UsageError

LOG = "qemu10-pc-bridges-ts.log"
SIMPLE = "pc-boot.simpletrace"


def _tar_with(path: Path, mode: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_tar_member_names_are_labels_never_paths(tmp_path: Path, shared_traces: Path) -> None:
    log = (shared_traces / LOG).read_bytes()
    archive = tmp_path / "in" / "ci.tar.gz"
    archive.parent.mkdir()
    _tar_with(
        archive,
        "w:gz",
        [
            _file("run1/trace.log", log),
            _file("../../escape.log", log),
            _file("/etc/absolute.log", log),
            _link("evil-link.log", "/etc/passwd", tarfile.SYMTYPE),
            _link("hard.log", "run1/trace.log", tarfile.LNKTYPE),
        ],
    )
    spill = tmp_path / "spill"
    spill.mkdir()
    before = _listing(tmp_path)
    found = discover([str(archive)], spill, limit_bytes=1 << 30)
    names = [a.name for a in found.artifacts]
    assert names == [
        f"{archive}!run1/trace.log",
        f"{archive}!../../escape.log",
        f"{archive}!/etc/absolute.log",
    ]
    # Only qtrace-named copies appeared, all inside the spill directory, byte-identical.
    created = _listing(tmp_path) - before
    assert created and all(re.fullmatch(r"spill/tar-member-\d{7}", c) for c in created)
    for artifact in found.artifacts:
        assert Path(artifact.parts[0].path).read_bytes() == log
    errors = {u.name.split("!")[1]: u.error for u in found.unreadable}
    assert "not followed" in errors["evil-link.log"] and "/etc/passwd" in errors["evil-link.log"]
    assert "hard link" in errors["hard.log"]


def test_zip_members_read_in_place_and_symlinks_refused(
    tmp_path: Path, shared_traces: Path
) -> None:
    log = (shared_traces / LOG).read_bytes()
    archive = tmp_path / "ci.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/trace.log", log)
        zf.writestr("../up.log", log)
        link = zipfile.ZipInfo("link.log")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("dir/", b"")
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(archive)], spill, limit_bytes=1 << 30)
    assert [a.name for a in found.artifacts] == [f"{archive}!a/trace.log", f"{archive}!../up.log"]
    assert [p.zip_index for a in found.artifacts for p in a.parts] == [0, 1]
    assert not list(spill.iterdir())  # zip members are never copied at discovery
    (bad,) = found.unreadable
    assert bad.name.endswith("!link.log") and "not followed" in bad.error


def test_archives_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    zipped = tmp_path / "looks-like.log"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("x", b"flatview_new 0x1 (root 0x2)\n")
    tar_xz = tmp_path / "artifact.bin"
    _tar_with(tar_xz, "w:xz", [_file("x", b"data")])
    raw_tar = io.BytesIO()
    with tarfile.open(fileobj=raw_tar, mode="w") as archive:
        info, data = _file("x", b"data")
        archive.addfile(info, io.BytesIO(data))
    tar_zst = tmp_path / "artifact.zst"
    tar_zst.write_bytes(zstandard.ZstdCompressor().compress(raw_tar.getvalue()))
    plain = tmp_path / "trace.tar"
    plain.write_bytes(b"flatview_new 0x1 (root 0x2)\n")
    assert archive_kind(zipped) == "zip"
    assert archive_kind(tar_xz) == "tar"
    assert archive_kind(tar_zst) == "tar"
    assert archive_kind(plain) is None
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(tar_zst)], spill, limit_bytes=100)
    assert [a.name for a in found.artifacts] == [f"{tar_zst}!x"]


def test_tar_member_over_the_limit_is_a_record_and_later_members_still_come(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "big.tar.gz"
    _tar_with(archive, "w:gz", [_file("huge.log", b"\0" * 5000), _file("small.log", b"x" * 10)])
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(archive)], spill, limit_bytes=1000)
    assert [a.name for a in found.artifacts] == [f"{archive}!small.log"]
    (big,) = found.unreadable
    assert big.name.endswith("!huge.log")
    assert "5000 bytes" in big.error and "--max-input-bytes" in big.error


def test_damaged_archive_keeps_members_before_the_damage(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tar"
    _tar_with(whole, "w", [_file("one.log", b"a" * 2000), _file("two.log", b"b" * 2000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:4000])  # inside the second member's data
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(cut)], spill, limit_bytes=1 << 20)
    assert [a.name for a in found.artifacts] == [f"{cut}!one.log"]
    assert any("damaged tar archive" in u.error for u in found.unreadable)


def test_directories_globs_and_missing_inputs(tmp_path: Path) -> None:
    tree = tmp_path / "ci"
    (tree / "b" / "deep").mkdir(parents=True)
    (tree / "a.log").write_text("x\n")
    (tree / "b" / "deep" / "c.log").write_text("x\n")
    (tree / "b" / "link.log").symlink_to("/etc/hostname")
    (tree / "b" / "dirlink").symlink_to("/etc")
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover(
        [str(tree), str(tmp_path / "ci" / "**" / "c.log"), str(tmp_path / "nope.log")],
        spill,
        limit_bytes=100,
    )
    # c.log is named twice (by the walk and the glob) and runs once.
    assert [a.name for a in found.artifacts] == [f"{tree}/a.log", f"{tree}/b/deep/c.log"]
    reasons = {Path(u.name).name: u.error for u in found.unreadable}
    assert "not followed" in reasons["link.log"] and "not followed" in reasons["dirlink"]
    assert reasons["nope.log"] == "no such file"
    found = discover([str(tmp_path / "*.nothing")], spill, limit_bytes=100)
    assert found.unreadable[0].error == "no file matches this pattern"
    # The batch's own output directory inside an input tree is never read as input.
    found = discover([str(tree)], spill, limit_bytes=100, skip_dir=tree / "b" / "deep")
    assert [a.name for a in found.artifacts] == [f"{tree}/a.log"]


def test_group_by_joins_per_thread_files(tmp_path: Path) -> None:
    for name in ("run1/log.101", "run1/log.102", "run2/log.7", "other.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x\n")
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(tmp_path)], spill, limit_bytes=100, group_by=r"\.\d+$")
    runs = {a.name: [Path(p.name).name for p in a.parts] for a in found.artifacts}
    assert runs == {
        f"{tmp_path}/other.txt": ["other.txt"],
        f"{tmp_path}/run1/log": ["log.101", "log.102"],
        f"{tmp_path}/run2/log": ["log.7"],
    }
    assert group_key("x/run9/log.5", re.compile(r"(run\d+)/log\.\d+")) == "run9"
    with pytest.raises(UsageError, match="--group-by"):
        discover([str(tmp_path)], spill, limit_bytes=100, group_by="(")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("../../etc/passwd", "00003-etc_passwd"),
        ("ci.tar.gz!/abs/x.log", "00003-ci.tar.gz_abs_x.log"),
        ("<script>alert(1)</script>", "00003-script_alert_1_script"),
        ("..", "00003-artifact"),
        ("a" * 300, "00003-" + "a" * 80),
    ],
)
def test_output_file_names_are_chosen_by_qtrace(name: str, stem: str) -> None:
    assert file_stem(3, name) == stem


def test_copy_and_decompression_stop_at_the_limit(tmp_path: Path) -> None:
    out = io.BytesIO()
    assert copy_limited(io.BytesIO(b"x" * 100), out, 100, "x") == 100
    with pytest.raises(InputTooLarge):
        copy_limited(io.BytesIO(b"x" * 101), io.BytesIO(), 100, "x")
    for name, data in (
        ("bomb.gz", gzip.compress(b"\0" * 4_000_000)),
        ("bomb.xz", lzma.compress(b"\0" * 4_000_000)),
        ("bomb.zst", zstandard.ZstdCompressor().compress(b"\0" * 4_000_000)),
    ):
        bomb = tmp_path / name
        bomb.write_bytes(data)
        assert bomb.stat().st_size < 20_000
        with (
            pytest.raises(InputTooLarge, match=r"decodes to more than .*--max-input-bytes"),
            open_input(str(bomb), limit_bytes=1_000_000, tmpdir=str(tmp_path)),
        ):
            pass
        assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in tmp_path.glob("bomb.*"))
    truncated = tmp_path / "cut.gz"
    truncated.write_bytes(gzip.compress(random.Random(0).randbytes(100_000))[:50_000])
    with open_input(str(truncated), limit_bytes=1 << 20) as opened:
        assert opened.warnings and "truncated" in opened.warnings[0]
        assert opened.cut is not None and opened.cut.decoded_bytes == opened.path.stat().st_size


def test_task_turns_bombs_and_nested_archives_into_failure_records(tmp_path: Path) -> None:
    bomb = tmp_path / "trace.log.gz"
    bomb.write_bytes(gzip.compress(b"flatview_new 0x1 (root 0x2)\n" * 200_000))
    nested = tmp_path / "inner.zip"
    with zipfile.ZipFile(nested, "w") as zf:
        zf.writestr("x.log", b"x")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(nested, "inner.zip")
        zf.writestr("bomb.log", b"\0" * 3_000_000)
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(bomb), str(outer)], spill, limit_bytes=1_000_000)
    options = TaskOptions(limit_bytes=1_000_000, dashboard_dir=None, scratch_dir=str(tmp_path))
    errors = {a.name: run_task(i, a, options).error for i, a in enumerate(found.artifacts)}
    assert errors[str(bomb)] is not None and "--max-input-bytes" in errors[str(bomb)]
    assert "--max-input-bytes" in (errors[f"{outer}!bomb.log"] or "")
    assert "archive inside an archive" in (errors[f"{outer}!inner.zip"] or "")
    # Every scratch copy is gone.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["trace.log.gz", "inner.zip", "outer.zip", "spill"]
    )


def test_directory_walk_passes_over_docs_and_hidden_files(tmp_path: Path) -> None:
    from qtrace.batch.artifact import Discovery
    from qtrace.batch.discover import _walk

    for name in ("run.log", "testlog.txt", "README.md", "make.py", ".hidden", "report.html"):
        (tmp_path / name).write_text("flatview_new 0x1 (root (nil))\n")
    found = _walk(tmp_path, Discovery(), None)
    assert sorted(p.name for p in found) == ["run.log", "testlog.txt"]


def _discover_within(seconds: float, *args: Any, **kwargs: Any) -> Discovery:
    """``discover``, failing (not hanging) if it waits on a pipe."""
    found: list[Discovery] = []
    worker = threading.Thread(target=lambda: found.append(discover(*args, **kwargs)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert found, "discover() waited on a named pipe"
    return found[0]


def test_walks_and_globs_pass_over_pipes_and_sockets(samples: Path, tmp_path: Path) -> None:
    tree = tmp_path / "ci"
    tree.mkdir()
    (tree / "run.log").write_bytes((samples / "pc-boot-ts.log").read_bytes())
    os.mkfifo(tree / "fifo.log")  # nobody writes it: opening it would wait forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "qmp.sock"))
    spill = tmp_path / "spill"
    spill.mkdir()
    try:
        found = _discover_within(30, [str(tree), str(tree / "*.log")], spill, limit_bytes=1 << 20)
        assert [a.name for a in found.artifacts] == [str(tree / "run.log")]
        assert found.unreadable == []
        found = _discover_within(30, [str(tree / "fifo*")], spill, limit_bytes=1 << 20)
        assert found.artifacts == []
        [why] = found.unreadable
        assert why.error.startswith("matches no regular file")
    finally:
        sock.close()


def test_a_pipe_named_on_the_command_line_is_read_as_a_stream(
    samples: Path, tmp_path: Path
) -> None:
    log = (samples / "pc-boot-ts.log").read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    threading.Thread(target=fifo.write_bytes, args=(gzip.compress(log),), daemon=True).start()
    spill = tmp_path / "spill"
    spill.mkdir()
    found = _discover_within(30, [str(fifo)], spill, limit_bytes=1 << 20)
    [artifact] = found.artifacts
    assert artifact.name == str(fifo)
    options = TaskOptions(limit_bytes=1 << 20, dashboard_dir=None, scratch_dir=str(tmp_path))
    outcome = run_task(0, artifact, options)
    assert outcome.error is None and outcome.record["events"]["flatview_new"] == 257


def test_a_latin1_tar_member_name_is_shown_escaped(samples: Path, tmp_path: Path) -> None:
    log = (samples / "pc-boot-ts.log").read_bytes()
    archive = tmp_path / "ci.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        for name in ("caf\xe9.log", "ok.log"):
            info = tarfile.TarInfo(name)
            info.size = len(log)
            tar.addfile(info, io.BytesIO(log))
    spill = tmp_path / "spill"
    spill.mkdir()
    found = discover([str(archive)], spill, limit_bytes=1 << 20)
    names = [a.name for a in found.artifacts]
    assert names == [f"{archive}!caf\\xe9.log", f"{archive}!ok.log"]
    options = TaskOptions(limit_bytes=1 << 20, dashboard_dir=None, scratch_dir=str(tmp_path))
    outcome = run_task(0, found.artifacts[0], options)
    assert outcome.error is None
    assert outcome.views is not None
    assert outcome.views["source"].unique().to_list() == [names[0]]


def test_inputs_that_cannot_be_opened_say_what_they_are(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    spill = tmp_path / "spill"
    spill.mkdir()
    names = ["loop", "dangling", "missing"]
    found = discover([str(tmp_path / n) for n in names], spill, limit_bytes=100)
    assert {Path(u.name).name: u.error for u in found.unreadable} == {
        "loop": "a symbolic link loop (too many levels of symbolic links)",
        "dangling": "a symbolic link to a missing file",
        "missing": "no such file",
    }
