"""How the command line speaks: one line per message on stderr, prefixed ``qtrace:``."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from qtrace.errors import QtraceError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """One line on stderr (printed as is: trace text may hold rich markup characters)."""
    stderr.print(f"qtrace: {text}", markup=False)


def fail(error: QtraceError) -> NoReturn:
    """Report ``error`` in one line and exit with its documented code."""
    say(f"error: {error}")
    raise typer.Exit(error.exit_code)
