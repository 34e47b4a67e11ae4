"""Guest profiles: vCPUs, memory and the isolation kernel arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import HarnessError

DEFAULT_CMDLINE = "isolcpus=domain,managed_irq,2-3 nohz_full=2-3 rcu_nocbs=2-3"


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    cpus: int = 4
    memory: str = "2G"
    cmdline: str = DEFAULT_CMDLINE

    def isolated_cpus(self) -> str:
        """The cpulist of the isolcpus= argument ("" when none)."""
        for arg in self.cmdline.split():
            if arg.startswith("isolcpus="):
                return arg.split("=", 1)[1].split(",")[-1]
        return ""


PROFILES = {
    "default": Profile(),
    # Two housekeeping CPUs are the minimum that leaves CPU 1 for timekeeping
    # with nohz_full; this one isolates a single CPU.
    "small": Profile(name="small", cpus=2, memory="1G", cmdline="isolcpus=domain,managed_irq,1 nohz_full=1 rcu_nocbs=1"),
    "none": Profile(name="none", cmdline=""),
}


def make_profile(name: str, cpus: int | None = None, memory: str | None = None, cmdline: str | None = None,
                 append: list[str] | None = None) -> Profile:
    if name not in PROFILES:
        raise HarnessError(f"unknown profile '{name}'", hint=f"known profiles: {', '.join(PROFILES)}")
    prof = PROFILES[name]
    if cpus is not None:
        if cpus < 1 or cpus > 8:
            raise HarnessError(f"--cpus {cpus} is out of range", hint="use 1 to 8 (CONFIG_NR_CPUS is 8)")
        prof = replace(prof, cpus=cpus)
    if memory is not None:
        if not re.fullmatch(r"\d+[MG]", memory):
            raise HarnessError(f"--memory {memory!r} is not a size", hint="use e.g. 1G or 1536M")
        prof = replace(prof, memory=memory)
    if cmdline is not None:
        prof = replace(prof, cmdline=cmdline)
    if append:
        prof = replace(prof, cmdline=" ".join([prof.cmdline, *append]).strip())
    return prof
