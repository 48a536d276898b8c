"""How the command line speaks: one line per message on stderr, prefixed ``qtrace:``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NoReturn

import typer

from qtrace.errors import QtraceError

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def _stderr() -> Console:
    from rich.console import Console  # made on the first message: most commands print none

    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """One line on stderr (printed as is: trace text may hold rich markup characters)."""
    _stderr().print(f"qtrace: {text}", markup=False)


def fail(error: QtraceError) -> NoReturn:
    """Report ``error`` in one line and exit with its documented code."""
    say(f"error: {error}")
    raise typer.Exit(error.exit_code)
