"""The docs cannot drift from the CLI: every command is in the README and has help text."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qtrace.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands() -> list[str]:
    return sorted(str(info.name) for info in app.registered_commands)


def test_every_command_is_in_the_readme_with_help() -> None:
    readme = (ROOT / "README.md").read_text()
    assert _commands() == ["analyze", "batch", "dashboard", "diff", "events", "names", "record"]
    for name in _commands():
        assert f"`qtrace {name}" in readme, name
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert len(result.stdout.split("Usage:")[1].strip().splitlines()) > 3, name


def test_readme_setup_commands_are_make_targets_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert f"\n{target}:" in makefile
    assert "make test" in ci.splitlines()[-1]
