"""Every docstring example of the package runs, from the repository root (samples/ paths).

Examples are documentation: a skipped or stale one is documentation nobody checks.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import polars as pl
import pytest
import qtrace.dashboards
import qtrace.parsers

import qtrace

ROOT = Path(__file__).resolve().parents[1]
# parsers/ and dashboards/ install as qtrace.parsers and qtrace.dashboards from folders of
# their own, so each package is walked from its own path.
PACKAGES = [qtrace, qtrace.parsers, qtrace.dashboards]
MODULES = sorted(
    {package.__name__ for package in PACKAGES}
    | {
        info.name
        for package in PACKAGES
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if not info.name.split(".")[-1].startswith("_")
    }
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module, extraglobs={"qtrace": qtrace, "pl": pl}):
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} failing docstring example(s)"


def test_examples_are_not_skipped() -> None:
    sources = [
        path
        for folder in ("qtrace", "parsers", "dashboards")
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]
    skipped = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"doctest:.*\+SKIP", line)
    ]
    assert skipped == []
