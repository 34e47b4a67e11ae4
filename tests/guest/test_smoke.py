"""Smoke test of the pipeline: the guest runs the kernel we built, with the
isolation arguments of the profile in force."""

from __future__ import annotations

import os
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")


def cpulist(text: str) -> set[int]:
    cpus: set[int] = set()
    text = text.strip()
    if text == "(null)":
        return cpus
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def test_cpu_count_matches_profile():
    assert os.cpu_count() == int(os.environ["ISOLHARNESS_CPUS"])
    assert cpulist((SYS_CPU / "online").read_text()) == cpulist((SYS_CPU / "possible").read_text())


def test_isolated_cpus_match_profile(isolated_cpus):
    assert cpulist((SYS_CPU / "isolated").read_text()) == cpulist(isolated_cpus)


def test_nohz_full_matches_profile(isolated_cpus):
    nohz = SYS_CPU / "nohz_full"
    assert nohz.exists(), "kernel lacks CONFIG_NO_HZ_FULL"
    assert cpulist(nohz.read_text()) == cpulist(isolated_cpus)


def test_uapi_headers_installed(headers):
    assert (headers / "linux" / "prctl.h").is_file()
