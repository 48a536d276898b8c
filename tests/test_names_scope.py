"""Which name each root interval takes (qtrace/names/scope.py), on hand-written traces.

Each trace is in tests/model_traces.py's notation; row i has seq i and, with a clock,
ts_ns = 1000 * i, so a names-file time of ``0.0000015`` s (1500 ns) falls between seq 1 and 2.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from model_traces import trace

from qtrace import analyze, read_names
from qtrace.names import Names, trace_names
from qtrace.names.scope import place_claims

# A pointer reused by another MR: 0x10 is pinned over [1, 3], freed, then pinned again from 4.
REUSED = """
new 1 nil
new 2 10      # 1: the first region at 0x10
rcu 2 10
destroy 2 10  # 3
new 3 10      # 4: another region at the same address
rcu 3 10
destroy 3 10  # 6
other
"""


def names(tmp_path: Path, text: str) -> Names:
    path = tmp_path / "roots.txt"
    path.write_text(text)
    return read_names(path)


def interval_names(text: str, found: Names | None, *, clock: bool = True) -> list[object]:
    analysis = analyze(trace(text, clock=clock), names=found)
    pinned = analysis.root_intervals.filter(pl.col("kind") == "pinned").sort("start_seq")
    return pinned["name"].to_list()


def test_a_later_line_names_the_region_that_took_the_address(tmp_path: Path) -> None:
    found = names(
        tmp_path,
        "0.0000015 0x10 first_region\n0.0000045 0x10 second_region\n",
    )
    assert interval_names(REUSED, found) == ["first_region", "second_region"]
    roots = analyze(trace(REUSED), names=found).roots
    assert roots["name"].to_list() == ["first_region / second_region"]
    assert roots["name_source"].to_list() == ["file"]


def test_an_interval_between_lines_takes_the_line_in_effect(tmp_path: Path) -> None:
    # 0.5: before everything; 3.5: between the intervals (after the first region was freed).
    found = names(tmp_path, "0.0000005 0x10 early\n0.0000035 0x10 later\n")
    assert interval_names(REUSED, found) == ["early", "later"]


def test_the_first_line_also_names_what_came_before_it(tmp_path: Path) -> None:
    # A debugger names roots after they appear, here after the trace ended.
    found = names(tmp_path, "1.0 0x10 afterwards\n")
    assert interval_names(REUSED, found) == ["afterwards", "afterwards"]


def test_a_pointer_the_trace_never_uses_is_ignored(tmp_path: Path) -> None:
    found = names(tmp_path, "0.0000015 0x99 unused\n0.0000015 0x10 used\n")
    analysis = analyze(trace(REUSED), names=found)
    assert analysis.roots["name"].to_list() == ["used"]
    assert analysis.roots["root"].to_list() == [0x10]


def finalize_trace(text: str, names_by_seq: dict[int, str]) -> pl.DataFrame:
    """A trace whose finalize rows print as QEMU's log backend would: ``mr 0x10, NAME``."""
    events = trace(text)
    args = [
        f"mr 0x10, {names_by_seq[seq]}" if seq in names_by_seq else value
        for seq, value in zip(events["seq"].to_list(), events["args"].to_list(), strict=True)
    ]
    return events.with_columns(pl.Series("args", args))


def test_a_finalize_names_the_region_up_to_its_end_and_no_later(tmp_path: Path) -> None:
    text = """
    new 1 nil
    new 2 10      # 1
    rcu 2 10
    destroy 2 10  # 3
    finalize 10   # 4: the first region at 0x10 dies here
    new 3 10      # 5: another region
    other
    """
    events = finalize_trace(text, {4: "pci_bridge_io"})
    claims = trace_names(events).claims
    assert claims.select("root", "name", "at_seq", "source").rows() == [
        (0x10, "pci_bridge_io", 4, "finalize")
    ]
    # A names-file line made after the finalize names the second region only.
    found = names(tmp_path, "0.0000060 0x10 bus_master_container\n")
    analysis = analyze(events, names=found)
    pinned = analysis.root_intervals.filter(pl.col("kind") == "pinned").sort("start_seq")
    assert pinned.select("name", "name_source").rows() == [
        ("pci_bridge_io", "finalize"),
        ("bus_master_container", "file"),
    ]
    # Without it, the second region has no name: the finalized one's does not carry over.
    assert interval_names(text, None) == ["pci_bridge_io", None]


def test_a_region_finalized_while_pinned_keeps_its_name_for_the_hazard(tmp_path: Path) -> None:
    text = """
    new 1 nil
    new 2 10      # 1
    rcu 2 10      # 2: only RCU-pending from here
    finalize 10   # 3: the hazard
    destroy 2 10
    """
    events = finalize_trace(text, {3: "pci_bridge_io"})
    # A debugger saw the region re-initialised in place, after the finalize: same name, so
    # its alias information applies; the name itself is the finalize's.
    found = names(tmp_path, "1.0 0x10 pci_bridge_io [alias of 0x20 pci_bridge_io] gdb probe\n")
    hit = analyze(events, names=found).anomalies.row(0, named=True)
    assert hit["kind"] == "root_finalized_while_pinned"
    assert (hit["root_name"], hit["root_alias_of"], hit["pinned_by"]) == (
        "pci_bridge_io",
        "pci_bridge_io",
        "rcu_pending",
    )
    # A region of another name after the finalize names neither the span nor its alias.
    other = names(tmp_path, "1.0 0x10 bus_master [alias of 0x20 pci_bridge_io] gdb probe\n")
    hit = analyze(events, names=other).anomalies.row(0, named=True)
    assert (hit["root_name"], hit["root_alias_of"]) == ("pci_bridge_io", None)


def test_alias_information_comes_from_a_file_line_of_the_same_region(tmp_path: Path) -> None:
    text = """
    new 1 nil
    new 2 10      # 1
    finalize 10   # 2: finalized while live
    rcu 2 10
    destroy 2 10
    """
    events = finalize_trace(text, {2: "pci_bridge_io"})
    found = names(tmp_path, "0.0000015 0x10 pci_bridge_io [alias of 0x20 pci_bridge_io] gdb\n")
    analysis = analyze(events, names=found)
    hit = analysis.anomalies.row(0, named=True)
    assert (hit["root_name"], hit["root_alias_of"], hit["pinned_by"]) == (
        "pci_bridge_io",
        "pci_bridge_io",
        "live",
    )
    root = analysis.roots.row(0, named=True)
    assert (root["alias_root"], root["name_source"]) == (0x20, "gdb")


def test_without_a_clock_a_pointer_is_named_only_when_its_lines_agree(tmp_path: Path) -> None:
    text = """
    new 1 nil
    new 2 10
    new 3 20
    """
    found = names(
        tmp_path,
        "5.0 0x10 system\n9.0 0x10 system\n5.0 0x20 first\n9.0 0x20 second\n",
    )
    analysis = analyze(trace(text, clock=False), names=found)
    assert analysis.roots.select("root", "name").rows() == [(0x10, "system"), (0x20, None)]


def test_names_hold_in_their_own_run(tmp_path: Path) -> None:
    text = """
    new 1 nil     # 0: run 0
    new 2 10      # 1
    new 3 nil     # 2: run 1, another QEMU process
    new 4 10      # 3: the same address in that process
    """
    found = names(tmp_path, "0.0000035 0x10 in_run_1\n")
    roots = analyze(trace(text), names=found).roots.sort("run")
    assert roots.select("run", "name").rows() == [(0, None), (1, "in_run_1")]


def test_leaks_and_anomalies_carry_their_root_name(tmp_path: Path) -> None:
    text = """
    new 1 nil
    new 2 10      # 1: leaked (a newer view of 0x10 follows)
    new 3 10
    rcu 9 30      # 3: orphan: 0x30 was never pinned
    """
    found = names(tmp_path, "0.0000015 0x10 system\n0.0000015 0x30 io\n")
    analysis = analyze(trace(text), names=found)
    assert analysis.flagged_views.select("view", "root_name").rows() == [(2, "system")]
    orphan = analysis.anomalies.row(0, named=True)
    assert (orphan["kind"], orphan["root_name"], orphan["pinned_by"]) == (
        "orphan_destroy_rcu",
        None,  # no pinned interval of 0x30 holds it
        None,
    )


def test_memory_region_ops_names_in_the_log_dialect() -> None:
    events = trace("new 1 nil\nnew 2 10\nmemory_region_ops_read\nmemory_region_ops_write")
    args = [
        None,
        None,
        "cpu 0 mr 0x10 addr 0x71 value 0x0 size 1 name 'rtc'",
        "cpu 0 mr 0x10 addr 0x70 value 0x8f size 1 name 'rtc'",
    ]
    events = events.with_columns(pl.Series("args", args))
    claims = trace_names(events).claims
    assert claims.select("root", "name", "source").unique().rows() == [(0x10, "rtc", "ops")]
    assert analyze(events).roots.select("name", "name_source").rows() == [("rtc", "ops")]


def test_memory_region_ops_names_from_a_real_simple_trace(shared_traces: Path) -> None:
    from qtrace import read_trace

    found = read_trace(shared_traces / "pc-bridges-mixed.simpletrace", events="memory_region_ops_*")
    claims = trace_names(found.events).claims
    assert claims["name"].n_unique() == 27
    # simpletrace.py prints: memory_region_ops_write ... mr=0x559b98863ca0 ... name=b'apic-msi'
    assert ("apic-msi", "ops") in claims.filter(pl.col("root") == 0x559B98863CA0).select(
        "name", "source"
    ).unique().rows()
    # 47,665 accesses place as the first and last of each stretch, every (region, name) kept.
    placed = place_claims(claims, found.events, has_clock=True).claims
    assert claims.height == 47665 and placed.height < 100
    pairs = claims.select("root", "name").unique().sort("root", "name")
    assert placed.select("root", "name").unique().sort("root", "name").equals(pairs)


def test_an_analysis_without_any_name_has_null_name_columns() -> None:
    analysis = analyze(trace(REUSED))
    assert analysis.roots["name"].to_list() == [None]
    assert {"name", "alias_of", "alias_root", "name_source"} <= set(analysis.roots.columns)
    assert {"root_name", "root_alias_of", "pinned_by"} <= set(analysis.anomalies.columns)
