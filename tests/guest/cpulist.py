"""The kernel's cpulist format (Documentation/admin-guide/cputopology.rst),
as the sysfs CPU files print it: "0-2,5" (nohz_full prints "(null)" for
none)."""

from __future__ import annotations


def cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    if text.strip() == "(null)":
        return cpus
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
