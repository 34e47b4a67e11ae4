"""Choosing the accelerator: KVM only when a probe boot proves it works.

On some hosts /dev/kvm opens and KVM initialises, yet a guest hangs right
after "Decompressing Linux..." (nested, para-virtualised KVM). QEMU's own
``accel=kvm:tcg`` fallback cannot see that, so a short probe boot with a
deadline decides. The verdict is cached per host boot and QEMU version.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .errors import HarnessError
from .files import atomic_write

ACCELS = ("auto", "kvm", "tcg")
# A working KVM guest reaches its command in a few seconds, printing all the
# way (the kernel log, then virtme-ng's init); TCG needs ~10 s. A hung KVM
# guest stops printing after the decompressor's "Booting the kernel": the
# probe ends after PROBE_STALL seconds of silence, not at the deadline.
# Mistaking a slow KVM for a hung one costs speed (TCG), never a verdict.
PROBE_DEADLINE = 30.0
PROBE_STALL = 5.0


@dataclass(frozen=True)
class AccelChoice:
    accel: str       # "kvm" or "tcg"
    reason: str


def kvm_usable_device(dev: str = "/dev/kvm") -> bool:
    return os.path.exists(dev) and os.access(dev, os.R_OK | os.W_OK)


def host_key() -> str:
    """Identifies the conditions a probe verdict holds for."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    try:
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        qemu = "none"
    return f"{boot_id} {qemu}"


def decide(requested: str, device_ok: bool, cached: dict[str, object] | None, key: str,
           probe: Callable[[], str]) -> tuple[AccelChoice, dict[str, object] | None]:
    """Pure decision; returns the choice and the cache record to store (or
    None). ``probe`` boots a KVM guest and says what went wrong ("" if
    nothing)."""
    if requested not in ACCELS:
        raise HarnessError(f"unknown accelerator {requested!r}", hint=f"use one of: {', '.join(ACCELS)}")
    if requested == "tcg":
        return AccelChoice("tcg", "requested"), None
    if requested == "kvm":
        if not device_ok:
            raise HarnessError("--accel kvm requested but /dev/kvm is missing or not accessible",
                               hint="use --accel auto or tcg, or fix /dev/kvm permissions")
        return AccelChoice("kvm", "requested"), None
    if not device_ok:
        return AccelChoice("tcg", "/dev/kvm missing or not accessible"), None
    if cached and cached.get("key") == key and cached.get("accel") in ("kvm", "tcg"):
        return AccelChoice(str(cached["accel"]), f"{cached.get('reason')} (cached probe)"), None
    failure = probe()
    if not failure:
        choice = AccelChoice("kvm", "KVM probe boot reached the guest command")
    else:
        choice = AccelChoice("tcg", f"KVM probe boot {failure}")
    return choice, {"key": key, **asdict(choice)}


def probe_failure(reached_command: bool, returncode: int | None, stalled: bool, duration: float) -> str:
    """What a probe boot's end says about KVM ("" when it works)."""
    if reached_command:
        return ""
    if stalled:
        return f"printed nothing for {PROBE_STALL:.0f}s before the guest command (hung after {duration:.0f}s)"
    if returncode is None:
        return f"did not reach the guest command within {PROBE_DEADLINE:.0f}s"
    return f"ended (exit {returncode}) after {duration:.0f}s without reaching the guest command"


def choose(requested: str, cache: Path, probe: Callable[[], str]) -> AccelChoice:
    record_file = cache / "accel.json"
    try:
        cached = json.loads(record_file.read_text())
    except (OSError, ValueError):
        cached = None
    choice, record = decide(requested, kvm_usable_device(), cached, host_key(), probe)
    if record is not None:
        atomic_write(record_file, json.dumps(record))
    return choice
