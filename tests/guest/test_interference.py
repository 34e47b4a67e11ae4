"""Interference budgets (interference.py) on the paths block-interf
converts: each refused operation leaves the blocked CPU with nothing in its
account, and the same operation with the mask cleared shows up, by source,
in the account of a free CPU (the account is not blind). Then the whole
point of both series at once: a user loop on an isolated, blocked CPU with
task isolation active, while the housekeeping CPUs do every refused
operation, a stat_refresh and a burst of ordinary system calls.

The mask is set in each test's setup (blocked_mask), so that the body
holds only the operation under test.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import time

import pytest

from interference import violations
from test_block_interf import CLOCKEVENTS, CLOCKSOURCE, MASK, MTRR, MTRR_BASE, MTRR_LINE, PERF_TYPE_SOFTWARE, \
    STAT_REFRESH, SYS_perf_event_open, \
    cleared, clocksources, cpus, mtrr, mtrr_reg, perf_open, set_mask, unbind, write  # noqa: F401 - fixtures
from test_task_isolation import MCL_CURRENT, MCL_FUTURE, c, configure_and_activate, libc  # noqa: F401 - fixture



@pytest.fixture
def blocked_mask(cpus):
    set_mask(f"{cpus[0]}")
    yield cpus[0]
    set_mask("")


@pytest.fixture
def both_blocked(cpus):
    set_mask(",".join(map(str, sorted(cpus))))
    yield
    set_mask("")


@pytest.fixture
def mtrr_entry(cpus, mtrr):
    assert write(MTRR, MTRR_LINE + "\n") == 0
    reg = mtrr_reg(MTRR.read_text(), MTRR_BASE)
    assert reg is not None
    return reg


# ---------------------------------------------------------------- the fixture itself

@pytest.mark.quiet("isolated")
def test_the_account_of_an_idle_body_is_empty(cpus):
    """The recorder's own work (the counters, the trace instance) reaches
    no isolated CPU: an idle body shows nothing on them but BACKGROUND."""
    time.sleep(0.5)


# ---------------------------------------------------------------- refused: nothing reaches the CPU

@pytest.mark.quiet("blocked")
def test_budget_a_refused_perf_open(blocked_mask):
    """Nothing at all: not the installation IPI, not the static-key patching
    the first event of a kind does on every CPU (perf_event_alloc)."""
    for _ in range(10):
        assert perf_open(blocked_mask)[1] == errno.EPERM


PERF_COUNT_SW_DUMMY, CONTEXT_SWITCH = 9, 1 << 26     # <linux/perf_event.h>: attr flags bit 26


def context_switch_open(cpu: int) -> int:
    """perf_event_open of a {software, dummy, context_switch=1} event on
    cpu: 0 or the errno. Allocating it enables the perf_sched_events static
    key when no other event holds it, and that text patching IPIs every
    online CPU (shared/spec: "perf including the static-key patching")."""
    attr = ctypes.create_string_buffer(64)
    struct.pack_into("IIQ", attr, 0, PERF_TYPE_SOFTWARE, 64, PERF_COUNT_SW_DUMMY)
    struct.pack_into("Q", attr, 40, CONTEXT_SWITCH)
    fd = libc.syscall(SYS_perf_event_open, attr, -1, cpu, -1, 0)
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


@pytest.mark.quiet("blocked")
def test_budget_a_refused_perf_open_that_would_patch_a_static_key(blocked_mask):
    assert context_switch_open(blocked_mask) == errno.EPERM


@pytest.mark.quiet("isolated")
def test_budget_a_refused_clockevent_unbind(cpus, both_blocked):
    cpu = max(cpus)          # the device its name finds first (test_block_interf.py)
    assert unbind(cpu)[1] == errno.EPERM


@pytest.mark.quiet("blocked")
def test_budget_a_refused_clocksource_switch(blocked_mask, clocksources):
    assert write(CLOCKSOURCE / "current_clocksource", clocksources[1] + "\n") == errno.EPERM


@pytest.mark.quiet("blocked")
def test_budget_a_refused_mtrr_add(cpus, mtrr, blocked_mask):
    assert write(MTRR, MTRR_LINE + "\n") == errno.EPERM


@pytest.mark.quiet("blocked")
def test_budget_a_refused_mtrr_disable(mtrr_entry, blocked_mask):
    assert write(MTRR, f"disable={mtrr_entry}\n") == errno.EPERM


@pytest.mark.quiet("blocked")
def test_budget_a_stat_refresh_with_a_cpu_blocked(blocked_mask):
    assert write(STAT_REFRESH, "1\n") == 0


# ---------------------------------------------------------------- allowed: the account sees it

@pytest.mark.interrupts("free", "csd:remote_function")
def test_account_sees_a_perf_open_on_a_free_cpu(cpus):
    fd, err = perf_open(cpus[1])
    assert err == 0, os.strerror(err)
    os.close(fd)


@pytest.mark.interrupts("free", "ran:migration/{cpu}")
def test_account_sees_the_stop_machine_of_a_clocksource_switch(cpus, clocksources):
    current, other = clocksources
    assert write(CLOCKSOURCE / "current_clocksource", other + "\n") == 0
    assert write(CLOCKSOURCE / "current_clocksource", current + "\n") == 0


@pytest.mark.interrupts("free", "ran:migration/{cpu}")
def test_account_sees_the_stop_machine_of_an_mtrr_add(cpus, mtrr):
    assert write(MTRR, MTRR_LINE + "\n") == 0


@pytest.mark.interrupts("free", "ran:migration/{cpu}")
def test_account_sees_the_stop_machine_of_an_mtrr_disable(mtrr_entry):
    assert write(MTRR, f"disable={mtrr_entry}\n") == 0


@pytest.mark.interrupts("free", "work_run:refresh_vm_stats")
def test_account_sees_the_work_of_a_stat_refresh(cpus):
    assert write(STAT_REFRESH, "1\n") == 0


@pytest.mark.interrupts("last", "csd:__clockevents_unbind")
def test_account_sees_a_clockevent_unbind(cpus):
    assert unbind(max(cpus))[1] in (0, errno.EBUSY)


# ---------------------------------------------------------------- both series at once

def _isolated_loop(c, cpu: int, flag: mmap.mmap, ready_w: int) -> None:
    os.sched_setaffinity(0, {cpu})
    assert libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0, os.strerror(ctypes.get_errno())
    configure_and_activate(c)
    os.write(ready_w, b"x")           # the last system call: it quiesces on its way out
    while flag[0] == 0:
        pass


# The child's mlockall() faults in every page the interpreter maps, over 9p
# and under TCG: about a minute before the loop starts.
@pytest.mark.timeout(300)
def test_an_isolated_user_loop_sees_nothing_of_the_refused_operations(c, cpus, interference, clocksources, mtrr):
    """A task-isolated user loop on the blocked CPU, while this process (on
    the housekeeping CPUs) does every refused operation (perf opens, one
    that would patch a static key, the clockevent unbind, the clocksource
    switch, MTRR add and disable), a stat_refresh and
    a burst of ordinary system calls: the loop's CPU shows nothing in that
    stretch but what stock 6.12 sends a busy nohz_full CPU anyway
    (interference.BACKGROUND)."""
    blocked, free = cpus
    flag = mmap.mmap(-1, mmap.PAGESIZE)      # shared with the child: it loops until flag[0] is set
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _isolated_loop(c, blocked, flag, ready_w)
        finally:
            os._exit(0)
    try:
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"x"
        assert write(MTRR, MTRR_LINE + "\n") == 0        # an entry to try to disable
        reg = mtrr_reg(MTRR.read_text(), MTRR_BASE)
        set_mask(f"{blocked}")
        time.sleep(0.2)                      # the loop settled on its CPU
        with interference.window() as w:
            assert perf_open(blocked)[1] == errno.EPERM
            assert context_switch_open(blocked) == errno.EPERM
            assert unbind(blocked)[1] == errno.EPERM
            assert write(CLOCKSOURCE / "current_clocksource", clocksources[1] + "\n") == errno.EPERM
            assert write(MTRR, MTRR_LINE + "\n") == errno.EPERM
            assert write(MTRR, f"disable={reg}\n") == errno.EPERM
            assert write(STAT_REFRESH, "1\n") == 0
            for _ in range(1000):
                os.getppid()
                os.stat("/")
            time.sleep(1.0)
    finally:
        flag[0] = 1
        os.waitpid(pid, 0)
        set_mask("")
    noise = violations(w.account, blocked, ("ran:python3",))    # the loop itself, switched back in
    assert not noise, f"the isolated loop's CPU {blocked} saw, beyond BACKGROUND:\n{noise}"
