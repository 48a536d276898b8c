"""The CI-facing outputs: junit.xml, summary.md and GitHub workflow-command annotations.

Text from artifacts (names, error messages, log file names) is hostile until escaped, and each
format has its own rules: XML 1.0 forbids some characters outright, Markdown tables break on
``|`` and render inline HTML, and GitHub workflow commands end at a newline or a ``::``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from qtrace.batch.gating import LEAKS, READABLE, Verdict
from qtrace.batch.summary import STATUS_FINDINGS, STATUS_UNREADABLE, Row
from qtrace.formatting import escape_control, escape_markdown

MAX_MARKDOWN_ROWS = 50
MAX_ANNOTATIONS = 50
MAX_LEAKS_LISTED = 20

# Characters XML 1.0 allows; everything else (NUL, most C0 controls, lone surrogates) goes.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with characters XML 1.0 cannot carry replaced (ElementTree escapes the rest)."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def _leak_lines(leaks: list[dict[str, Any]]) -> str:
    lines = [
        f"view {leak.get('view')} (root {leak.get('root')}, generation "
        f"{leak.get('generation')}) {leak.get('status')}: built at "
        f"{leak.get('source')}:{leak.get('line')}"
        for leak in leaks[:MAX_LEAKS_LISTED]
    ]
    if len(leaks) > MAX_LEAKS_LISTED:
        lines.append(f"... and {len(leaks) - MAX_LEAKS_LISTED} more (see summary.json)")
    return "\n".join(lines)


def junit_xml(
    rows: list[Row], verdicts: list[Verdict], leaks: dict[str, list[dict[str, Any]]]
) -> bytes:
    """One testsuite per artifact, one testcase per check; failures carry the details."""
    suites = ET.Element("testsuites", name="qtrace batch")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    seconds = 0.0
    for row, verdict in zip(rows, verdicts, strict=True):
        suite = ET.SubElement(suites, "testsuite", name=xml_text(row.artifact))
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for check in verdict.checks:
            case = ET.SubElement(
                suite, "testcase", name=check.name, classname=xml_text(row.artifact), time="0"
            )
            counts["tests"] += 1
            if check.failed:
                counts["failures"] += 1
                failure = ET.SubElement(
                    case, "failure", message=xml_text(check.message), type=check.name
                )
                if check.name == LEAKS:
                    failure.text = xml_text(_leak_lines(leaks.get(row.artifact, [])))
                else:
                    failure.text = xml_text(check.message)
            elif check.count and check.name != READABLE:
                out = ET.SubElement(case, "system-out")
                out.text = xml_text(f"{check.message}; not failing by policy or baseline")
        if row.status == STATUS_UNREADABLE:
            # The other checks could not run: say so rather than report them as passed.
            for name in (LEAKS,):
                case = ET.SubElement(
                    suite, "testcase", name=name, classname=xml_text(row.artifact), time="0"
                )
                ET.SubElement(case, "skipped", message="input could not be read")
                counts["tests"] += 1
                counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        seconds += row.seconds
        suite.set("errors", "0")
        suite.set("time", f"{row.seconds:.3f}")
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("errors", "0")
    suites.set("time", f"{seconds:.3f}")
    ET.indent(suites)
    return bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))


def summary_markdown(rows: list[Row], verdicts: list[Verdict], exit_code: int) -> str:
    """A short table for a CI step summary: problems first, at most ``MAX_MARKDOWN_ROWS``."""
    failing = sum(bool(v.failed) for v in verdicts)
    unreadable = sum(r.status == STATUS_UNREADABLE for r in rows)
    findings = sum(r.status == STATUS_FINDINGS for r in rows)
    verdict_word = "passed" if exit_code == 0 else "failed"
    lines = [
        f"### qtrace batch {verdict_word}: {len(rows)} artifacts, {findings} with findings, "
        f"{unreadable} unreadable, {failing} failing",
        "",
        "| artifact | status | events | views | leaks | anomalies | max concurrent views |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    by_artifact = {v.artifact: v for v in verdicts}
    order = sorted(
        rows,
        key=lambda r: (not by_artifact[r.artifact].failed, r.status == "clean", r.artifact),
    )
    for row in order[:MAX_MARKDOWN_ROWS]:
        status = row.status + (" (failing)" if by_artifact[row.artifact].failed else "")
        numbers = [row.events, row.views, row.leaks, row.anomalies, row.max_concurrent_views]
        cells = ["-"] * len(numbers) if row.status == STATUS_UNREADABLE else numbers
        lines.append(
            f"| {escape_markdown(row.artifact)} | {status} | "
            + " | ".join(str(c) for c in cells)
            + " |"
        )
    if len(rows) > MAX_MARKDOWN_ROWS:
        lines.append(f"\n{len(rows) - MAX_MARKDOWN_ROWS} more artifacts in summary.json.")
    changes = [
        (v.artifact, word, items)
        for v in verdicts
        for word, items in (("worse", v.worse), ("improved", v.improved))
        if items
    ]
    if changes:
        lines += ["", "Against the baseline:", ""]
        lines += [
            f"- {escape_markdown(name)}: {word}: {escape_markdown(', '.join(items))}"
            for name, word, items in changes[:MAX_MARKDOWN_ROWS]
        ]
    return "\n".join(lines) + "\n"


def _command_data(text: str) -> str:
    # GitHub's own escaping (actions/toolkit), plus no terminal control characters.
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return escape_control(escaped)


def _command_property(text: str) -> str:
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(file: str, line: int | None, title: str, message: str) -> str:
    """A GitHub ``::error`` workflow command, escaped as the runner's toolkit does."""
    props = [f"file={_command_property(file)}"]
    if line is not None:
        props.append(f"line={int(line)}")
    props.append(f"title={_command_property(title)}")
    return f"::error {','.join(props)}::{_command_data(message)}"


def github_annotations(
    rows: list[Row], verdicts: list[Verdict], leaks: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """Annotations for failing checks: each leaked view at the log line that built it."""
    commands: list[str] = []
    for row, verdict in zip(rows, verdicts, strict=True):
        for check in verdict.failed:
            if check.name == READABLE:
                commands.append(annotation(row.artifact, None, "unreadable trace", check.message))
            elif check.name == LEAKS:
                for leak in leaks.get(row.artifact, []):
                    line = leak.get("line")
                    commands.append(
                        annotation(
                            str(leak.get("source") or row.artifact),
                            int(line) if isinstance(line, int) else None,
                            "FlatView leak",
                            f"view {leak.get('view')} of root {leak.get('root')} "
                            f"(generation {leak.get('generation')}) is {leak.get('status')}",
                        )
                    )
            else:
                commands.append(annotation(row.artifact, None, check.name, check.message))
    if len(commands) > MAX_ANNOTATIONS:
        dropped = len(commands) - MAX_ANNOTATIONS
        commands = commands[:MAX_ANNOTATIONS]
        commands.append(f"::warning::{dropped} more qtrace findings; see junit.xml or summary.md")
    return commands
