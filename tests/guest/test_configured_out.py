"""Kernels with the series applied but a feature configured out behave as
INTERFACE.md says: with CONFIG_TASK_ISOLATION=n every PR_ISOL_* option is
EINVAL, like an unknown prctl option; with CONFIG_CPU_ISOLATION=n there is
no block_interf file and every converted path behaves as on a stock kernel.

Each test runs only on a kernel built that way (the e2e variants build
them: tests/e2e/test_kernel_variants.py) and is skipped, with the reason,
on any other; the tests of the features skip on these kernels.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cpulist import cpulist
from kernel_config import configured_out, options
from programs import TASK_ISOLATION_UAPI, HeaderMissing, constants
from test_block_interf import CLOCKSOURCE, MASK, MTRR, MTRR_BASE, MTRR_LINE, STAT_REFRESH, mtrr_reg, perf_open, \
    write
from test_task_isolation import prctl_errno


def only_without(option: str) -> None:
    if options() is None:
        pytest.fail("the kernel's config is unknown (no ISOLHARNESS_KCONFIG, /proc/config.gz or /boot/config-*)")
    if not configured_out(option):
        state = (options() or {}).get(option) or "absent (a tree without the series)"
        pytest.skip(f"kernel's {option} is {state}, not 'is not set': this test is for a kernel that configured "
                    f"the feature out; the feature's own tests cover this one")


def kernel_symbols() -> set[str]:
    return {line.split()[2] for line in Path("/proc/kallsyms").read_text().splitlines()}


def test_task_isolation_configured_out_every_option_is_einval(headers):
    only_without("CONFIG_TASK_ISOLATION")
    try:
        c = constants(TASK_ISOLATION_UAPI, headers)
    except HeaderMissing as exc:
        pytest.fail(f"the series' uapi headers are installed whatever the config: {exc}")
    quiesce, vmstats = c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"]
    # Each option with the arguments a working kernel accepts, and with none.
    calls = [("PR_ISOL_FEAT", 0), ("PR_ISOL_FEAT", quiesce), ("PR_ISOL_GET", 0), ("PR_ISOL_GET", quiesce),
             ("PR_ISOL_SET", quiesce, vmstats), ("PR_ISOL_CTRL_GET",), ("PR_ISOL_CTRL_SET", quiesce),
             ("PR_ISOL_CTRL_SET", 0), ("PR_ISOL_GET_INT", c["INHERIT_CFG"], 0),
             ("PR_ISOL_SET_INT", c["INHERIT_CFG"], 0)]
    got = {f"{name}{args}": os.strerror(prctl_errno(c[name], *args)) for name, *args in calls}
    assert set(got.values()) == {os.strerror(errno.EINVAL)}, got
    present = {s for s in kernel_symbols() if s.startswith("task_isol")}
    assert not present, f"CONFIG_TASK_ISOLATION=n kernel still has {sorted(present)}"


def test_cpu_isolation_configured_out_paths_behave_as_stock():
    only_without("CONFIG_CPU_ISOLATION")
    assert not MASK.exists(), f"{MASK} exists on a CONFIG_CPU_ISOLATION=n kernel"
    online = cpulist(Path("/sys/devices/system/cpu/online").read_text())
    assert len(online) >= 2, online
    for cpu in online:
        fd, err = perf_open(cpu)
        assert err == 0, f"perf_event_open on CPU {cpu}: {os.strerror(err)}"
        os.close(fd)
    current = (CLOCKSOURCE / "current_clocksource").read_text().strip()
    others = [s for s in (CLOCKSOURCE / "available_clocksource").read_text().split() if s != current]
    assert others, "a single clocksource: nothing to switch to"
    try:
        assert write(CLOCKSOURCE / "current_clocksource", others[0] + "\n") == 0
        assert (CLOCKSOURCE / "current_clocksource").read_text().strip() == others[0]
    finally:
        assert write(CLOCKSOURCE / "current_clocksource", current + "\n") == 0
    assert write(STAT_REFRESH, "1\n") == 0
    assert write(MTRR, MTRR_LINE + "\n") == 0
    reg = mtrr_reg(MTRR.read_text(), MTRR_BASE)
    assert reg is not None, MTRR.read_text()
    assert write(MTRR, f"disable={reg}\n") == 0
    assert mtrr_reg(MTRR.read_text(), MTRR_BASE) is None
