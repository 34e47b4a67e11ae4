"""Smoke test of the pipeline: the guest runs the kernel we built, with the
isolation arguments of the profile in force."""

from __future__ import annotations

import os
from pathlib import Path

from cpulist import cpulist

SYS_CPU = Path("/sys/devices/system/cpu")


def test_cpu_count_matches_profile():
    assert os.cpu_count() == int(os.environ["ISOLHARNESS_CPUS"])
    assert set(cpulist((SYS_CPU / "online").read_text())) == set(cpulist((SYS_CPU / "possible").read_text()))


def test_isolated_cpus_match_profile(isolated_cpus):
    assert set(cpulist((SYS_CPU / "isolated").read_text())) == set(cpulist(isolated_cpus))


def test_nohz_full_matches_profile(isolated_cpus):
    nohz = SYS_CPU / "nohz_full"
    assert nohz.exists(), "kernel lacks CONFIG_NO_HZ_FULL"
    assert set(cpulist(nohz.read_text())) == set(cpulist(isolated_cpus))


def test_uapi_headers_installed(headers):
    assert (headers / "linux" / "prctl.h").is_file()
