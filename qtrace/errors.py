"""Errors that end a command, each with the exit code the CLI documents."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # findings that pass the --fail-on policy
EXIT_USAGE = 2  # bad command line (Typer's own code for usage errors)
EXIT_INPUT = 3  # unreadable or invalid input
EXIT_INTERNAL = 4  # a bug in qtrace (never expected; reported in one line)


class QtraceError(Exception):
    """An error with a one-line message meant for the user, and an exit code."""

    exit_code = EXIT_INPUT


class InputError(QtraceError):
    """Nothing could be read from an input: missing, a directory, empty, not a trace."""

    exit_code = EXIT_INPUT


class UsageError(QtraceError):
    """Options that contradict each other or name something that does not exist."""

    exit_code = EXIT_USAGE
