"""The wheel installs qtrace.parsers and qtrace.dashboards, and nothing generic, and it works."""

from __future__ import annotations

import subprocess
import sys
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
