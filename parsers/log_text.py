"""The log backend's text reader, kept at its old name: the work is in ``qtrace.parsers.log``."""

from __future__ import annotations

from qtrace.parsers.log import parse

__all__ = ["parse"]
