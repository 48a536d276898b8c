"""The wheel installs qtrace.parsers and qtrace.dashboards, and nothing generic, and it works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "pc-boot.simpletrace"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
    )
    (found,) = out.glob("qtrace-*.whl")
    return found


@pytest.mark.slow
def test_wheel_ships_subpackages_under_qtrace_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("qtrace-")}
    assert top_level == {"qtrace"}
    assert "qtrace/parsers/__init__.py" in names
    assert "qtrace/dashboards/__init__.py" in names
    assert "qtrace/py.typed" in names


@pytest.mark.slow
def test_wheel_in_fresh_venv_runs_help_and_a_real_analysis(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "--quiet", str(wheel)], check=True)
    qtrace = venv / "bin" / "qtrace"
    help_run = subprocess.run([str(qtrace), "--help"], capture_output=True, text=True, check=True)
    assert "analyze" in help_run.stdout and "events" in help_run.stdout
    analysis = subprocess.run(
        [str(qtrace), "analyze", str(SAMPLE), "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: the installed copy must be what runs
    )
    assert analysis.returncode == 0, analysis.stderr
    assert '"schema": "qtrace.analyze/1"' in analysis.stdout
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not (site / "parsers").exists() and not (site / "dashboards").exists()


@pytest.fixture(scope="module")
def no_compiler_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qtrace built where no C compiler works (``CC=false``), in a venv of its own.

    The venv reads the test environment's dependencies (polars, typer, ...) through a .pth
    line, but not its editable qtrace, so only the wheel's copy can be imported.
    """
    tmp = tmp_path_factory.mktemp("no-compiler")
    source = tmp / "source"  # a clean copy: the tree's build/ holds compiled objects
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            "build", ".venv", ".git", "*.so", "__pycache__", "*.egg-info", ".*_cache"
        ),
    )
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), "."],
        cwd=source,
        env={**os.environ, "CC": "false"},
        check=True,
    )
    (found,) = dist.glob("qtrace-*.whl")
    assert not [n for n in zipfile.ZipFile(found).namelist() if n.endswith(".so")]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    paths = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", paths], capture_output=True, text=True, check=True
    ).stdout.strip()
    (Path(site) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, found],
        check=True,
    )
    return venv / "bin" / "python"


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["pc-boot.simpletrace", "pc-hotplug-ts.log"])
def test_without_a_compiler_it_installs_gives_the_same_report_and_says_it_is_slower(
    no_compiler_install: Path, sample: str, tmp_path: Path
) -> None:
    version = subprocess.run(
        [str(no_compiler_install), "-m", "qtrace", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the repository, whose qtrace/ holds the compiled extensions
    )
    assert "C extensions: 0 of 4 built" in version.stdout

    def report(python: Path | str) -> subprocess.CompletedProcess[str]:
        path = ROOT / "samples" / sample
        return subprocess.run(
            [str(python), "-m", "qtrace", "analyze", str(path), "--format", "json"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

    slow, fast = report(no_compiler_install), report(sys.executable)
    assert (slow.returncode, slow.stdout) == (fast.returncode, fast.stdout)
    assert "note: built without a C compiler, so these run slower:" in slow.stderr
    assert "the lifetime model" in slow.stderr and "the log scanner" in slow.stderr
    assert "built without a C compiler" not in fast.stderr
