"""``python -m qtrace``: the ``qtrace`` command (wrapper scripts run it by the interpreter's
path, so they work without ``qtrace`` on PATH)."""

from qtrace.cli import main

main()
