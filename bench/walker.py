"""The baseline a user writes in an afternoon: a plain Python walker of a QEMU FlatView log.

Reads a log-backend trace line by line and applies the lifetime model's rules
(docs/model.md) with two dictionaries: the open view instance of each pointer, and the
live and RCU-pending pin levels of each root. Prints the counts ``qtrace analyze`` reports:
runs, instances per status, anomalies per kind, and the highest pin level of any root.
``bench/bench_analyze.py`` times ``qtrace analyze`` against it.

    python bench/walker.py trace.log
"""

from __future__ import annotations

import json
import sys
from collections import Counter

NAMES = {"flatview_new": "new", "flatview_destroy_rcu": "rcu", "flatview_destroy": "destroy"}


def pointer(text: str) -> int:
    return 0 if text == "(nil)" else int(text, 16)


def parse(line: str) -> tuple[str, int, int] | None:
    """(event, view, root) of a FlatView line in any prefix dialect, else None."""
    at = line.find("flatview_")
    if at < 0:
        return None
    name, _, args = line[at:].rstrip("\n").partition(" ")
    kind = NAMES.get(name)
    if kind is None or not args.endswith(")"):
        return None
    view, _, root = args[:-1].partition(" (root ")
    try:
        return kind, pointer(view), pointer(root)
    except ValueError:
        return None


def walk(lines: list[str] | object) -> dict[str, object]:
    events = [e for e in map(parse, lines) if e is not None]  # type: ignore[call-overload]
    traced = any(kind == "destroy" for kind, _, _ in events)
    statuses: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    peak = 0
    runs = 0
    open_views: dict[int, dict[str, object]] = {}
    levels: dict[int, list[int]] = {}  # root -> [live, pending]
    newest: dict[int, int] = {}  # root -> index of its newest instance
    instances: list[dict[str, object]] = []

    def end_run() -> None:
        for inst in open_views.values():
            if inst["rcu"]:
                statuses["rcu_pending" if traced else "freed"] += 1
            elif inst["nil_first"]:
                statuses["immortal"] += 1
            elif newest[inst["root"]] == inst["index"]:  # type: ignore[index]
                statuses["current"] += 1
            else:
                statuses["leaked"] += 1

    def pin(root: int, d_live: int, d_pending: int) -> None:
        nonlocal peak
        if root == 0:
            return
        level = levels.setdefault(root, [0, 0])
        level[0] += d_live
        level[1] += d_pending
        peak = max(peak, level[0] + level[1])

    def unpin(inst: dict[str, object]) -> None:
        phase = inst["phase"]
        pin(inst["root"], -1 if phase == "live" else 0, -1 if phase == "pending" else 0)  # type: ignore[arg-type]
        inst["phase"] = None

    for kind, view, root in events:
        if kind == "new" and root == 0:
            if runs:
                end_run()
            runs += 1
            open_views, levels, newest = {}, {}, {}
        elif not runs:
            runs = 1
        inst = open_views.get(view)
        if kind == "new":
            if inst is not None:
                if not inst["rcu"] or traced:
                    anomalies["new_while_live" if not inst["rcu"] else "reused_before_destroy"] += 1
                    statuses["lost"] += 1
                    unpin(inst)
                else:
                    statuses["freed"] += 1
            index = len(instances)
            inst = {"root": root, "rcu": False, "phase": "live", "index": index}
            inst["nil_first"] = root == 0
            instances.append(inst)
            open_views[view] = inst
            newest[root] = index
            pin(root, 1, 0)
        elif kind == "rcu":
            if root == 0:
                anomalies["null_root"] += 1
            if inst is None:
                anomalies["orphan_destroy_rcu"] += 1
            elif inst["rcu"]:
                anomalies["double_destroy_rcu"] += 1
            else:
                inst["rcu"] = True
                if root != inst["root"]:
                    anomalies["root_mismatch"] += 1
                if traced:
                    pin(inst["root"], -1, 1)  # type: ignore[arg-type]
                    inst["phase"] = "pending"
                else:
                    unpin(inst)
        else:
            if inst is None:
                anomalies["orphan_destroy"] += 1
                continue
            if not inst["rcu"]:
                anomalies["destroy_without_rcu"] += 1
            if root != inst["root"]:
                anomalies["root_mismatch"] += 1
            unpin(inst)
            statuses["freed"] += 1
            del open_views[view]
    if runs:
        end_run()
    return {
        "runs": runs,
        "statuses": dict(sorted(statuses.items())),
        "anomalies": dict(sorted(anomalies.items())),
        "max_concurrent_views": peak,
    }


def main() -> int:
    with open(sys.argv[1], encoding="utf-8", errors="replace") as fh:
        print(json.dumps(walk(fh), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
