"""Names for root MemoryRegion pointers: ``pci_bridge_io [alias of pci_bridge_io]``, not
``0x563e2d2198b0``.

Names come from names files (``read_names``), from a running QEMU read with gdb
(``qtrace names``, gdb.py), and from the trace itself (``memory_region_finalize``,
``memory_region_ops_*``); each keeps its source. scope.py decides which name each root
interval takes, join.py puts them on the model's tables.
"""

from qtrace.names.claims import (
    NAMES_SUFFIX,
    SOURCES,
    Names,
    merge_names,
    names_beside,
    read_names,
    trace_names,
)
from qtrace.names.join import NAME_SEPARATOR, name_analysis, unnamed_intervals

__all__ = [
    "NAMES_SUFFIX",
    "NAME_SEPARATOR",
    "SOURCES",
    "Names",
    "merge_names",
    "name_analysis",
    "names_beside",
    "read_names",
    "trace_names",
    "unnamed_intervals",
]
