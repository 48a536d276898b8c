"""Names files: the shared roots file parses, bad files are one-line errors, lines round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from qtrace import InputError, read_names
from qtrace.cli import app
from qtrace.names.file import format_line, parse_names, parse_time_ns

runner = CliRunner()


def test_the_shared_roots_file_parses(shared_traces: Path) -> None:
    claims = read_names(shared_traces / "qemu10-pc-bridges-ts.roots.txt").claims
    assert claims.height == 11
    assert set(claims["source"]) == {"file"}  # labelled "periodic", not by qtrace names
    assert claims["at_ns"].unique().to_list() == [1795569499410496000]
    alias = claims.filter(claims["root"] == 0x563E2D2198B0).row(0, named=True)
    assert (alias["name"], alias["alias_root"], alias["alias_of"]) == (
        "pci_bridge_io",
        0x563E2D219440,
        "pci_bridge_io",
    )
    plain = claims.filter(claims["root"] == 0x563E2C2E9C00).row(0, named=True)
    assert (plain["name"], plain["alias_root"], plain["alias_of"]) == ("system", None, None)
    assert plain["origin"].endswith("qemu10-pc-bridges-ts.roots.txt:4")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("# only a comment\nnot a names line\n", 2),
        ("1.5 zz system\n", 1),
        ("1.5 0x10\n", 1),
        ("yesterday 0x10 system\n", 1),
        ("1.5 0x10 pci_bridge_io [alias of 0x20 pci_bridge_io\n", 1),
        ('1.5 0x10 "unterminated\n', 1),
        ('1.5 0x10 "bad \\q escape"\n', 1),
    ],
)
def test_a_line_that_does_not_parse_is_an_error_naming_file_and_line(text: str, line: int) -> None:
    with pytest.raises(InputError, match=rf"^roots\.txt:{line}: "):
        parse_names(text, "roots.txt")


def test_cli_rejects_a_bad_names_file_in_one_line(tmp_path: Path, shared_traces: Path) -> None:
    bad = tmp_path / "roots.txt"
    bad.write_text("1795569499.4 0x563e2d2198b0 pci_bridge_io\nrubbish\n")
    trace = str(shared_traces / "qemu10-pc-bridges-ts.log")
    for command in (["analyze", trace], ["dashboard", trace, "-o", str(tmp_path / "d.html")]):
        result = runner.invoke(app, [*command, "--names", str(bad)])
        assert result.exit_code == 3, command
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"qtrace: error: {bad}:2: not a names line "
            "(TIME POINTER NAME [alias of POINTER NAME] [label]): 'rubbish'"
        ]
    missing = runner.invoke(app, ["analyze", trace, "--names", str(tmp_path / "none.txt")])
    assert missing.exit_code == 3
    assert "cannot read names file" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout


def test_times_are_seconds_or_iso_8601_in_ns_exactly() -> None:
    assert parse_time_ns("1795569499.410496") == 1_795_569_499_410_496_000
    assert parse_time_ns("12") == 12_000_000_000
    assert parse_time_ns("0.000000001") == 1
    assert parse_time_ns("2025-07-21T18:43:28.089797Z") == 1_753_123_408_089_797_000
    assert parse_time_ns("2025-07-21T18:43:28Z") == 1_753_123_408_000_000_000
    assert parse_time_ns("2025-07-21T18:43:28") is None  # no zone: ambiguous
    assert parse_time_ns("-1") is None


def test_a_gdb_label_marks_the_source_gdb(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("1.0 0x10 system gdb probe\n2.0 0x20 io gdbish\n3.0 0x30 memory\n")
    assert read_names(path).claims["source"].to_list() == ["gdb", "file", "file"]


names_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)))


@given(
    at_ns=st.integers(0, 2**62 // 1000).map(lambda us: us * 1000),
    root=st.integers(1, 2**64 - 1),
    name=names_text,
    alias=st.none() | st.tuples(st.integers(1, 2**64 - 1), names_text),
    label=st.sampled_from(["", "gdb probe", "periodic"]),
)
def test_written_lines_read_back(
    at_ns: int, root: int, name: str, alias: tuple[int, str] | None, label: str
) -> None:
    alias_root, alias_of = alias if alias is not None else (None, None)
    text = format_line(at_ns, root, name, alias_root, alias_of, label)
    (line,) = parse_names(text + "\n", "f")
    assert (line.at_ns, line.root, line.name) == (at_ns, root, name)
    assert (line.alias_root, line.alias_of, line.label) == (alias_root, alias_of, label)
