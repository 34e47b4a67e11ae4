"""Kernel counters the guest tests read."""

from __future__ import annotations

from pathlib import Path


def vmstat(name: str) -> int:
    """One counter of /proc/vmstat (the global value, differentials not folded)."""
    for line in Path("/proc/vmstat").read_text().splitlines():
        key, value = line.split()
        if key == name:
            return int(value)
    raise KeyError(name)
