"""Block-interference mask (patches/block-interf), held to INTERFACE.md
"Series 2": the sysfs file, every converted path refusing with EPERM and
leaving its state unchanged, the same actions succeeding on a CPU that is not
blocked, proof from /proc/interrupts and the csd/workqueue tracepoints that
nothing reached the blocked CPU, and a writer racing readers.

The blocked CPU is the first isolated CPU of the profile, the free CPU the
second; this process runs on the housekeeping CPUs so that no call to the
blocked CPU is a local one. Calls queued to a CPU are counted with the
csd:csd_queue_cpu tracepoint (by the function they run) and the CAL row of
/proc/interrupts. Every test leaves the mask empty.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import fcntl
import mmap
import os
import pickle
import re
import resource
import select
import struct
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from child import in_child
from cpulist import cpulist
from kernel_config import configured_out
from kstat import vmstat
from tracing import Trace, kprobe

SERIES = "block-interf"
MASK = Path("/sys/devices/system/cpu/block_interf")
CLOCKSOURCE = Path("/sys/devices/system/clocksource/clocksource0")
CLOCKEVENTS = Path("/sys/devices/system/clockevents")
MTRR = Path("/proc/mtrr")
STAT_REFRESH = Path("/proc/sys/vm/stat_refresh")

# A variable MTRR range above the guest's RAM and clear of the PCI hole's
# uncachable range, so adding it changes nothing the guest uses.
MTRR_BASE, MTRR_SIZE = 0x200000000, 0x100000
MTRR_LINE = f"base={MTRR_BASE:#x} size={MTRR_SIZE:#x} type=write-combining"

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_perf_event_open, SYS_capget, SYS_capset = 298, 125, 126
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK = 1, 0
CAP_SYS_ADMIN = 21
BURST = 50


# The file as the kernel booted it: read at collection, before any test (and
# the fixture that clears the mask around every test) writes it.
BOOT_MASK = MASK.read_text() if MASK.exists() else None

# ---------------------------------------------------------------- helpers

def read_mask() -> str:
    return MASK.read_text()


def write(path: Path, text: str) -> int:
    """Write text in one write(2); return 0 or the errno it failed with."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        return exc.errno
    try:
        os.write(fd, text.encode())
    except OSError as exc:
        return exc.errno
    finally:
        os.close(fd)
    return 0


def set_mask(text: str) -> None:
    err = write(MASK, text + "\n")
    assert err == 0, f"writing {text!r} to {MASK}: {os.strerror(err)}"


def perf_attr() -> ctypes.Array:
    """A PERF_ATTR_SIZE_VER0 struct perf_event_attr for the cpu-clock
    software event, which any CPU has, counting kernel and user alike."""
    buf = ctypes.create_string_buffer(64)
    struct.pack_into("IIQ", buf, 0, PERF_TYPE_SOFTWARE, 64, PERF_COUNT_SW_CPU_CLOCK)
    return buf


def perf_open(cpu: int, group_fd: int = -1, pid: int = -1) -> tuple[int, int]:
    """perf_event_open(cpu-clock, pid, cpu): (fd, 0) or (-1, errno)."""
    fd = libc.syscall(SYS_perf_event_open, perf_attr(), pid, cpu, group_fd, 0)
    return (fd, 0) if fd >= 0 else (-1, ctypes.get_errno())


def dmesg() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def cal_counts() -> list[int]:
    """Function-call IPIs each CPU has taken (the CAL row of /proc/interrupts)."""
    lines = Path("/proc/interrupts").read_text().splitlines()
    ncpu = len(lines[0].split())
    row = next(line for line in lines if line.strip().startswith("CAL:"))
    return [int(x) for x in row.split()[1:1 + ncpu]]


def drop_effective_cap(cap: int) -> None:
    """Remove one capability from this process's effective set (capset(2))."""
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = ctypes.create_string_buffer(24)
    if libc.syscall(SYS_capget, header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    eff0, perm0, inh0, eff1, perm1, inh1 = struct.unpack("6I", data.raw)
    eff0 &= ~(1 << cap)
    data = ctypes.create_string_buffer(struct.pack("6I", eff0, perm0, inh0, eff1, perm1, inh1), 24)
    if libc.syscall(SYS_capset, header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _ioc_w(nr: int, size: int) -> int:
    return (1 << 30) | (size << 16) | (ord("M") << 8) | nr


MTRR_SENTRY = "QII"  # struct mtrr_sentry on x86_64: unsigned long base; unsigned int size, type
# The MTRRIOC_* ioctls that change the table (<asm/mtrr.h>), by name and number
MTRRIOC = {name: _ioc_w(nr, struct.calcsize(MTRR_SENTRY)) for name, nr in [
    ("ADD_ENTRY", 0), ("SET_ENTRY", 1), ("DEL_ENTRY", 2), ("KILL_ENTRY", 4),
    ("ADD_PAGE_ENTRY", 5), ("SET_PAGE_ENTRY", 6), ("DEL_PAGE_ENTRY", 7), ("KILL_PAGE_ENTRY", 9)]}


def mtrr_ioctl(fd: int, cmd: int, base: int, size: int, mtype: int = 1) -> int:
    try:
        fcntl.ioctl(fd, cmd, struct.pack(MTRR_SENTRY, base, size, mtype))
    except OSError as exc:
        return exc.errno
    return 0


def mtrr_reg(table: str, base: int) -> int | None:
    for line in table.splitlines():
        m = re.match(r"reg(\d+): base=(0x[0-9a-f]+)", line)
        if m and int(m.group(2), 16) == base:
            return int(m.group(1))
    return None


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def cpus(isolated_cpus, expected_series) -> tuple[int, int]:
    """(blocked, free): two isolated CPUs. Fails or skips when the file is absent."""
    if configured_out("CONFIG_CPU_ISOLATION"):
        pytest.skip("kernel built with CONFIG_CPU_ISOLATION=n (test_configured_out.py checks it)")
    if not MASK.exists():
        if SERIES in expected_series:
            pytest.fail(f"{SERIES} series expected but the feature is absent: {MASK} does not exist")
        pytest.skip(f"{SERIES} series not applied to this kernel")
    isolated = cpulist(isolated_cpus)
    if len(isolated) < 2:
        pytest.fail(f"these tests need two isolated CPUs, the profile isolates {isolated_cpus!r}")
    housekeeping = set(cpulist(Path("/sys/devices/system/cpu/online").read_text())) - set(isolated)
    os.sched_setaffinity(0, housekeeping)
    return isolated[0], isolated[1]


@pytest.fixture(autouse=True)
def cleared(request):
    """Every test starts and ends with an empty mask."""
    if "cpus" in request.fixturenames and MASK.exists():
        write(MASK, "\n")
        yield
        write(MASK, "\n")
    else:
        yield


@pytest.fixture
def clocksources() -> tuple[str, str]:
    """(current, another available one); the current one is restored after."""
    current = (CLOCKSOURCE / "current_clocksource").read_text().strip()
    others = [c for c in (CLOCKSOURCE / "available_clocksource").read_text().split() if c != current]
    if not others:
        pytest.fail("the guest has a single clocksource; nothing to switch to")
    yield current, others[0]
    write(MASK, "\n")
    write(CLOCKSOURCE / "current_clocksource", current + "\n")


# ---------------------------------------------------------------- the file

def test_file_reads_empty_at_boot(cpus):
    """Read when this module was imported, before any test wrote the file."""
    assert BOOT_MASK == "\n"


def test_file_mode_readable_by_all_writable_by_root(cpus):
    st = MASK.stat()
    assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o644, oct(st.st_mode)

    def read_as_nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        assert MASK.read_text() == "\n"
    in_child(read_as_nobody)


def test_write_then_read_back(cpus):
    blocked, free = cpus
    set_mask(f"{blocked}")
    assert read_mask() == f"{blocked}\n"
    set_mask(f"{free},{blocked}")
    lo, hi = sorted((blocked, free))
    assert read_mask() == (f"{lo}-{hi}\n" if hi == lo + 1 else f"{lo},{hi}\n")
    set_mask(f"{free}")
    assert read_mask() == f"{free}\n"


def test_empty_write_clears(cpus):
    blocked, _ = cpus
    set_mask(f"{blocked}")
    assert write(MASK, "\n") == 0
    assert read_mask() == "\n"


@pytest.mark.parametrize("bad", ["abc", "2-", "3-2", "1,,x", "-1", "0-1:3/2junk"])
def test_malformed_list_is_einval_and_keeps_the_mask(cpus, bad):
    blocked, _ = cpus
    set_mask(f"{blocked}")
    assert write(MASK, bad + "\n") == errno.EINVAL
    assert read_mask() == f"{blocked}\n"


def test_cpu_that_is_not_possible_is_einval_and_keeps_the_mask(cpus):
    blocked, _ = cpus
    possible = cpulist(Path("/sys/devices/system/cpu/possible").read_text())
    set_mask(f"{blocked}")
    for bad in (f"{max(possible) + 1}", f"{blocked},{max(possible) + 1}", "0-100000"):
        assert write(MASK, bad + "\n") == errno.EINVAL, bad
        assert read_mask() == f"{blocked}\n", bad


def test_unprivileged_write_is_refused_and_keeps_the_mask(cpus):
    blocked, free = cpus
    set_mask(f"{blocked}")

    def as_nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        assert write(MASK, f"{free}\n") in (errno.EACCES, errno.EPERM)

    def root_without_cap_sys_admin():
        drop_effective_cap(CAP_SYS_ADMIN)
        assert write(MASK, f"{free}\n") == errno.EPERM

    in_child(as_nobody)
    in_child(root_without_cap_sys_admin)
    assert read_mask() == f"{blocked}\n"


# ---------------------------------------------------------------- perf_event_open

def test_perf_event_open_on_blocked_cpu_is_eperm_and_creates_nothing(cpus):
    blocked, free = cpus
    set_mask(f"{blocked}")
    before = open_fds()
    fd, err = perf_open(blocked)
    assert (fd, err) == (-1, errno.EPERM)
    assert open_fds() == before, "a file descriptor was left behind"

    fd, err = perf_open(free)
    assert err == 0, f"perf_event_open on unblocked CPU {free}: {os.strerror(err)}"
    os.close(fd)


def test_perf_event_open_succeeds_once_the_mask_is_cleared(cpus):
    blocked, _ = cpus
    set_mask(f"{blocked}")
    assert perf_open(blocked)[1] == errno.EPERM
    set_mask("")
    fd, err = perf_open(blocked)
    assert err == 0, os.strerror(err)
    os.close(fd)


def test_perf_group_sibling_on_blocked_cpu_is_eperm(cpus):
    blocked, _ = cpus
    leader, err = perf_open(blocked)
    assert err == 0, os.strerror(err)
    try:
        set_mask(f"{blocked}")
        fd, err = perf_open(blocked, group_fd=leader)
        assert (fd, err) == (-1, errno.EPERM)
        # The leader opened before the mask was set is untouched and counts.
        assert len(os.read(leader, 8)) == 8
        set_mask("")
        fd, err = perf_open(blocked, group_fd=leader)
        assert err == 0, os.strerror(err)
        os.close(fd)
    finally:
        os.close(leader)


def test_perf_sibling_on_a_free_cpu_of_a_blocked_leader_is_eperm(cpus):
    """Joining a group whose leader is on a blocked CPU is refused as the
    leader's own open would be, whatever CPU the new event names: with the
    mask cleared the same call is a stock kernel's EINVAL (a group lives on
    one CPU)."""
    blocked, free = cpus
    leader, err = perf_open(blocked)
    assert err == 0, os.strerror(err)
    try:
        set_mask(f"{blocked}")
        assert perf_open(free, group_fd=leader) == (-1, errno.EPERM)
        set_mask("")
        assert perf_open(free, group_fd=leader) == (-1, errno.EINVAL)
    finally:
        os.close(leader)


@pytest.mark.parametrize("cpu", ["blocked", "any"])
def test_task_bound_perf_event_on_a_blocked_cpu_behaves_as_stock(cpus, cpu):
    """Only CPU-bound events are refused: an event of this task (pid 0),
    counting only while it runs on the blocked CPU or on any CPU, opens and
    reads as on a stock kernel. It interrupts no one but this task's CPU."""
    blocked, _ = cpus
    set_mask(f"{blocked}")
    fd, err = perf_open(blocked if cpu == "blocked" else -1, pid=0)
    assert err == 0, f"task-bound event on CPU {cpu}: {os.strerror(err)}"
    try:
        assert len(os.read(fd, 8)) == 8
    finally:
        os.close(fd)


def test_perf_burst_sends_no_ipi_to_the_blocked_cpu(cpus):
    """50 refused opens on the blocked CPU next to 50 open/close pairs on the
    free one: the free CPU takes the function-call IPIs that install and remove
    the events (two per pair), the blocked CPU takes none of them."""
    blocked, free = cpus
    set_mask(f"{blocked}")
    with Trace("csd/csd_queue_cpu") as trace:
        cal0 = cal_counts()
        for _ in range(BURST):
            assert perf_open(blocked)[1] == errno.EPERM
            fd, err = perf_open(free)
            assert err == 0, os.strerror(err)
            os.close(fd)
        cal1 = cal_counts()
    to_blocked = trace.count(rf"csd_queue_cpu: cpu={blocked} .*func=remote_function")
    to_free = trace.count(rf"csd_queue_cpu: cpu={free} .*func=remote_function")
    assert to_blocked == 0, [line for line in trace.lines if f"cpu={blocked} " in line][:5]
    assert to_free >= 2 * BURST, f"only {to_free} perf IPIs traced to CPU {free}"
    # Every call is queued (the tracepoint above); an idle CPU that polls for
    # work may pick a few up without the interrupt, so CAL can fall short of
    # 2 * BURST by a little (99 seen under lockdep), never by half.
    assert cal1[free] - cal0[free] >= BURST, (cal0, cal1)
    # Unrelated kernel activity may still call the isolated CPU now and then;
    # the burst itself would have added 2 * BURST.
    assert cal1[blocked] - cal0[blocked] <= 2, (cal0, cal1)


PERF_COUNT_SW_DUMMY = 9
ATTR_CONTEXT_SWITCH = 1 << 26     # struct perf_event_attr, the flags word at offset 40


def context_switch_attr() -> ctypes.Array:
    """A dummy software event with context_switch=1: allocating one accounts
    it, which can enable the perf_sched_events static key (text patching,
    an IPI to every CPU); freeing it undoes that a second later."""
    buf = ctypes.create_string_buffer(64)
    struct.pack_into("IIQ", buf, 0, PERF_TYPE_SOFTWARE, 64, PERF_COUNT_SW_DUMMY)
    struct.pack_into("Q", buf, 40, ATTR_CONTEXT_SWITCH)
    return buf


def test_a_refused_perf_open_allocates_no_event(cpus):
    """The refusal comes before the event is allocated (INTERFACE.md: "not
    even the event's allocation"), since allocating and freeing it may
    interrupt every CPU: no perf_event_alloc() allocation is traced for a
    refused open, where an allowed one shows one."""
    blocked, _ = cpus

    def traced_open() -> tuple[int, int]:
        with Trace("kmem/kmem_cache_alloc", "call_site.function == perf_event_alloc") as trace:
            fd = libc.syscall(SYS_perf_event_open, context_switch_attr(), -1, blocked, -1, 0)
            err = ctypes.get_errno()
            if fd >= 0:
                os.close(fd)
        return (0 if fd >= 0 else err), len(trace.lines)

    assert traced_open() == (0, 1), "an allowed open must show its allocation, or the trace sees nothing"
    set_mask(f"{blocked}")
    err, allocations = traced_open()
    assert err == errno.EPERM
    assert allocations == 0, "the refused open allocated an event before refusing"


# ---------------------------------------------------------------- clocksource

def test_clocksource_switch_is_eperm_and_keeps_the_clocksource(cpus, clocksources):
    blocked, _ = cpus
    current, other = clocksources
    set_mask(f"{blocked}")
    assert write(CLOCKSOURCE / "current_clocksource", other + "\n") == errno.EPERM
    assert (CLOCKSOURCE / "current_clocksource").read_text().strip() == current
    # Naming the clocksource in use stops nothing and succeeds.
    assert write(CLOCKSOURCE / "current_clocksource", current + "\n") == 0
    assert (CLOCKSOURCE / "current_clocksource").read_text().strip() == current


def test_clocksource_switch_succeeds_with_the_mask_cleared(cpus, clocksources):
    blocked, _ = cpus
    current, other = clocksources
    set_mask(f"{blocked}")
    assert write(CLOCKSOURCE / "current_clocksource", other + "\n") == errno.EPERM
    set_mask("")
    assert write(CLOCKSOURCE / "current_clocksource", other + "\n") == 0
    assert (CLOCKSOURCE / "current_clocksource").read_text().strip() == other
    assert write(CLOCKSOURCE / "current_clocksource", current + "\n") == 0
    assert (CLOCKSOURCE / "current_clocksource").read_text().strip() == current


def test_a_deferred_clocksource_override_is_eperm_too(cpus, clocksources):
    """jiffies is never valid for high resolution: in one-shot mode an
    override naming it is accepted and deferred, and the watchdog would
    switch to it later with a plain stop_machine(). While a CPU is blocked
    the write is refused instead, and nothing is left pending."""
    blocked, _ = cpus
    current, _ = clocksources
    set_mask(f"{blocked}")
    assert write(CLOCKSOURCE / "current_clocksource", "jiffies\n") == errno.EPERM
    assert (CLOCKSOURCE / "current_clocksource").read_text().strip() == current
    set_mask("")
    assert write(CLOCKSOURCE / "current_clocksource", "jiffies\n") == 0   # deferred, as on a stock kernel
    assert write(CLOCKSOURCE / "current_clocksource", current + "\n") == 0


# ---------------------------------------------------------------- clockevents

def unbind(cpu: int) -> tuple[str, int]:
    dev = CLOCKEVENTS / f"clockevent{cpu}"
    name = (dev / "current_device").read_text().strip()
    return name, write(dev / "unbind_device", name + "\n")


def test_clockevent_unbind_on_blocked_cpu_is_eperm_before_any_ipi(cpus):
    """The per-CPU tick devices share one name ("lapic"), and unbind_device
    acts on the first device of that name, the one registered last: the
    highest CPU's. So the CPU under test is the highest isolated one; with it
    blocked the write is refused before any call is queued to it, with the
    mask cleared the same write reaches it as on a stock kernel."""
    cpu = max(cpus)
    device = (CLOCKEVENTS / f"clockevent{cpu}" / "current_device").read_text()
    set_mask(f"{cpu}")
    with Trace("csd/csd_queue_cpu") as refused_trace:
        refused = [unbind(cpu)[1] for _ in range(10)]
    assert refused == [errno.EPERM] * 10
    assert (CLOCKEVENTS / f"clockevent{cpu}" / "current_device").read_text() == device
    assert refused_trace.count(rf"csd_queue_cpu: cpu={cpu} .*func=__clockevents_unbind") == 0

    set_mask("")
    with Trace("csd/csd_queue_cpu") as trace:
        allowed = [unbind(cpu)[1] for _ in range(10)]
    # As on a stock kernel: an IPI per request that found the device bound,
    # then whatever replacing it gives (EBUSY when there is no replacement).
    assert errno.EPERM not in allowed, allowed
    reached = sum(1 for err in allowed if err in (0, errno.EBUSY))
    assert reached >= 1, allowed
    assert trace.count(rf"csd_queue_cpu: cpu={cpu} .*func=__clockevents_unbind") == reached, allowed


@pytest.mark.parametrize("name", ["current", "nosuchdevice", "x" * 40])
def test_clockevent_unbind_of_a_blocked_cpu_is_eperm_whatever_the_name(cpus, name):
    """CPU N's unbind_device refuses every write while N is blocked, before
    the name is parsed or looked up: the per-CPU devices share one name, and
    the lookup must not decide between EPERM, EBUSY and ENODEV."""
    cpu = min(cpus)              # not the highest: its name finds another CPU's device first
    dev = CLOCKEVENTS / f"clockevent{cpu}"
    text = dev.joinpath("current_device").read_text().strip() if name == "current" else name
    set_mask(f"{cpu}")
    with Trace("csd/csd_queue_cpu") as trace:
        assert write(dev / "unbind_device", text + "\n") == errno.EPERM
    assert trace.count(rf"csd_queue_cpu: cpu={cpu} .*func=__clockevents_unbind") == 0
    set_mask("")
    assert write(dev / "unbind_device", text + "\n") != errno.EPERM


# ---------------------------------------------------------------- MTRR

@pytest.fixture
def mtrr():
    if not MTRR.exists():
        pytest.fail(f"{MTRR} missing (CONFIG_MTRR off, or the CPU has no MTRRs)")
    yield MTRR.read_text()
    write(MASK, "\n")
    reg = mtrr_reg(MTRR.read_text(), MTRR_BASE)
    while reg is not None:
        write(MTRR, f"disable={reg}\n")
        reg = mtrr_reg(MTRR.read_text(), MTRR_BASE)


def test_mtrr_add_through_proc_is_eperm_and_keeps_the_table(cpus, mtrr):
    blocked, _ = cpus
    set_mask(f"{blocked}")
    assert write(MTRR, MTRR_LINE + "\n") == errno.EPERM
    assert MTRR.read_text() == mtrr
    set_mask("")
    assert write(MTRR, MTRR_LINE + "\n") == 0
    assert mtrr_reg(MTRR.read_text(), MTRR_BASE) is not None


def test_mtrr_disable_through_proc_is_eperm_and_keeps_the_table(cpus, mtrr):
    blocked, _ = cpus
    assert write(MTRR, MTRR_LINE + "\n") == 0
    table = MTRR.read_text()
    reg = mtrr_reg(table, MTRR_BASE)
    assert reg is not None, table
    set_mask(f"{blocked}")
    assert write(MTRR, f"disable={reg}\n") == errno.EPERM
    assert MTRR.read_text() == table
    set_mask("")
    assert write(MTRR, f"disable={reg}\n") == 0
    assert MTRR.read_text() == mtrr


# Each way in of an MTRR change: the add form and the delete form that undoes it
# (DEL_ENTRY releases what this file added, KILL_ENTRY any entry). The _PAGE
# forms take base and size in pages.
MTRR_IOCTL_PAIRS = [("ADD_ENTRY", "DEL_ENTRY"), ("SET_ENTRY", "KILL_ENTRY"),
                    ("ADD_PAGE_ENTRY", "DEL_PAGE_ENTRY"), ("SET_PAGE_ENTRY", "KILL_PAGE_ENTRY")]


@pytest.mark.parametrize("add, delete", MTRR_IOCTL_PAIRS, ids=[f"{a}-{d}" for a, d in MTRR_IOCTL_PAIRS])
def test_every_mtrr_ioctl_is_eperm_and_keeps_the_table(cpus, mtrr, add, delete):
    blocked, _ = cpus
    shift = 12 if "PAGE" in add else 0
    base, size = MTRR_BASE >> shift, MTRR_SIZE >> shift
    fd = os.open(MTRR, os.O_RDWR)
    try:
        set_mask(f"{blocked}")
        assert mtrr_ioctl(fd, MTRRIOC[add], base, size) == errno.EPERM, add
        assert MTRR.read_text() == mtrr, add
        set_mask("")
        assert mtrr_ioctl(fd, MTRRIOC[add], base, size) == 0, add
        table = MTRR.read_text()
        assert mtrr_reg(table, MTRR_BASE) is not None, table
        set_mask(f"{blocked}")
        assert mtrr_ioctl(fd, MTRRIOC[delete], base, size) == errno.EPERM, delete
        assert MTRR.read_text() == table, delete
        set_mask("")
        assert mtrr_ioctl(fd, MTRRIOC[delete], base, size) == 0, delete
        assert MTRR.read_text() == mtrr, delete
    finally:
        os.close(fd)


def test_mtrr_disable_of_a_shared_entry_is_eperm_and_keeps_the_count(cpus, mtrr):
    """An entry added twice has a usage count of 2: releasing one reference
    reaches no CPU, and is refused all the same, the count kept."""
    blocked, _ = cpus
    assert write(MTRR, MTRR_LINE + "\n") == 0
    assert write(MTRR, MTRR_LINE + "\n") == 0
    table = MTRR.read_text()
    reg = mtrr_reg(table, MTRR_BASE)
    assert reg is not None, table
    assert "count=2:" in next(line for line in table.splitlines() if line.startswith(f"reg{reg:02d}:")), table
    set_mask(f"{blocked}")
    assert write(MTRR, f"disable={reg}\n") == errno.EPERM
    assert MTRR.read_text() == table
    set_mask("")
    assert write(MTRR, f"disable={reg}\n") == 0
    assert write(MTRR, f"disable={reg}\n") == 0
    assert MTRR.read_text() == mtrr


def _mtrr_churn(stop_fd: int) -> tuple[int, int]:
    """Add and remove one entry through the MTRRIOC ioctls of one file, as
    fast as they return, until ``stop_fd`` reads end of file: (changes
    made, changes refused)."""
    made = refused = 0
    held = False
    fd = os.open(MTRR, os.O_RDWR)
    try:
        while not select.select([stop_fd], [], [], 0)[0]:
            err = mtrr_ioctl(fd, MTRRIOC["DEL_ENTRY" if held else "ADD_ENTRY"], MTRR_BASE, MTRR_SIZE)
            if err == 0:
                made += 1
                held = not held
            elif err == errno.EPERM:
                refused += 1
            else:
                raise OSError(err, f"MTRR ioctl: {os.strerror(err)}")
    finally:
        os.close(fd)
    return made, refused


MTRR_HOTPLUG_ROUNDS = 20


def test_an_mtrr_change_racing_a_blocked_cpus_onlining_never_stops_it(cpus, mtrr):
    """The MTRR test must be made with CPU hotplug excluded: a change allowed
    while the blocked CPU is offline must not go on to stop it after it came
    online. The free CPU, blocked, is taken offline and brought back online
    again and again while another process adds and removes an entry; the
    MTRR rendezvous handler (a kprobe, which records the CPU it runs on)
    must never run on the blocked CPU. A kernel that tests the mask before
    cpus_read_lock() lets a change that tested while the CPU was down wait
    for the hotplug lock and then stop the CPU that came up meanwhile."""
    _, cpu = cpus
    online = Path(f"/sys/devices/system/cpu/cpu{cpu}/online")
    if not online.exists():
        pytest.fail(f"{online} missing: CPU {cpu} cannot be taken offline (CONFIG_HOTPLUG_CPU off?)")
    handler = kprobe("isol_mtrr_rendezvous", "mtrr_rendezvous_handler")
    set_mask(f"{cpu}")
    stop_r, stop_w = os.pipe()
    churn = None
    try:
        assert write(online, "0\n") == 0, f"taking CPU {cpu} offline"
        with Trace(handler) as trace:
            churn = _worker(lambda: _mtrr_churn(stop_r), (stop_r, stop_w))
            for _ in range(MTRR_HOTPLUG_ROUNDS):
                time.sleep(0.05)
                assert write(online, "1\n") == 0, f"bringing CPU {cpu} online"
                time.sleep(0.02)
                assert write(online, "0\n") == 0, f"taking CPU {cpu} offline"
            os.close(stop_w)
            stop_w = -1
            kind, value = _result(churn)
            os.waitpid(churn[0], 0)
            churn = None
    finally:
        if stop_w >= 0:
            os.close(stop_w)
        if churn is not None:
            os.waitpid(churn[0], 0)
        os.close(stop_r)
        write(online, "1\n")
    assert kind == "ok", value
    made, refused = value
    # Both sides of the race happened: changes went through while the CPU
    # was down, and were refused while it was up.
    assert made > 0 and refused > 0, f"{made} changes made, {refused} refused: the race was not run"
    assert trace.lines, "the rendezvous handler was never seen: the probe records nothing"
    on_cpu = [line for line in trace.lines if re.search(rf"\[{cpu:03d}\]", line)]
    assert not on_cpu, (f"{len(on_cpu)} MTRR rendezvous ran on blocked CPU {cpu} ({made} changes made, "
                        f"{refused} refused over {MTRR_HOTPLUG_ROUNDS} onlinings):\n" + "\n".join(on_cpu[:5]))


# ---------------------------------------------------------------- stat_refresh

def stat_refresh_work(cpus_of_interest: tuple[int, ...]) -> dict[int, int]:
    """refresh_vm_stats work items queued on each CPU by one stat_refresh write."""
    with Trace("workqueue/workqueue_queue_work") as trace:
        assert write(STAT_REFRESH, "1\n") == 0
    return {cpu: trace.count(rf"function=refresh_vm_stats .*\bcpu={cpu}\b") for cpu in cpus_of_interest}


def test_stat_refresh_queues_no_work_on_blocked_cpu(cpus):
    blocked, free = cpus
    set_mask(f"{blocked}")
    work = stat_refresh_work((blocked, free))
    assert work[blocked] == 0, work
    assert work[free] == 1, work


def test_stat_refresh_queues_work_on_every_cpu_with_the_mask_cleared(cpus):
    blocked, free = cpus
    work = stat_refresh_work((blocked, free))
    assert work == {blocked: 1, free: 1}, work


def test_a_mask_write_never_waits_for_a_stuck_stat_refresh(cpus):
    """stat_refresh waits for its work on every CPU it queued to; a CPU whose
    kworker cannot run (a SCHED_FIFO hog) holds it there. A write of the mask
    must still complete at once: the read side covers the queueing, not the
    wait."""
    blocked, free = cpus
    runtime = Path("/proc/sys/kernel/sched_rt_runtime_us")
    # Linux 6.12's fair server would still give the kworker 50 ms a second.
    fair = Path(f"/sys/kernel/debug/sched/fair_server/cpu{free}/runtime")
    saved, saved_fair = runtime.read_text(), fair.read_text()
    hog_seconds = 4.0
    runtime.write_text("-1\n")
    # The fair server is stopped only while it runs (6.12 warns about a
    # bandwidth underflow when an idle one is stopped): a fair task keeps it
    # running across the write, and starves with the kworker after.
    fair_task = os.fork()
    if fair_task == 0:
        os.sched_setaffinity(0, {free})
        while True:
            pass
    time.sleep(0.3)
    fair.write_text("0\n")
    r, w = os.pipe()
    hog = os.fork()
    if hog == 0:
        os.sched_setaffinity(0, {free})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        os.write(w, b"x")
        end = time.monotonic() + hog_seconds
        while time.monotonic() < end:
            pass
        os._exit(0)
    try:
        os.read(r, 1)
        time.sleep(0.2)
        refresh = threading.Thread(target=lambda: write(STAT_REFRESH, "1\n"))
        refresh.start()
        time.sleep(0.5)
        stuck = refresh.is_alive()
        start = time.monotonic()
        set_mask(f"{blocked}")
        took = time.monotonic() - start
        refresh.join(timeout=30)
    finally:
        os.waitpid(hog, 0)
        os.kill(fair_task, 9)
        os.waitpid(fair_task, 0)
        fair.write_text(saved_fair)
        runtime.write_text(saved)
        os.close(r)
        os.close(w)
    assert stuck, "stat_refresh did not wait for the hogged CPU: the test shows nothing"
    assert took < 1.0, f"the mask write waited {took:.1f}s for stat_refresh's work"


def test_a_partial_stat_refresh_raises_no_negative_counter_warning(cpus):
    """A blocked CPU keeps its differentials through stat_refresh, so a
    counter whose increments sit there and decrements elsewhere can total
    below zero: routine, not the imbalance vmstat_refresh's warning reports."""
    blocked, _ = cpus
    os.sched_setaffinity(0, {0})
    Path("/proc/sys/vm/stat_refresh").write_text("1")
    pages = vmstat("nr_mlock") + 4       # enough to take the total below zero
    buf = mmap.mmap(-1, pages * mmap.PAGESIZE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    done = threading.Event()
    locked = threading.Event()

    def on_blocked_cpu():
        os.sched_setaffinity(0, {blocked})
        assert libc.mlock(ctypes.c_void_p(addr), pages * mmap.PAGESIZE) == 0
        locked.set()
        while not done.is_set():     # busy: an idle CPU would fold its counters
            pass

    t = threading.Thread(target=on_blocked_cpu)
    t.start()
    try:
        assert locked.wait(10)
        set_mask(f"{blocked}")
        assert libc.munlock(ctypes.c_void_p(addr), pages * mmap.PAGESIZE) == 0
        # The munlocks wait in this CPU's mlock batch; mlock2(MLOCK_ONFAULT)
        # of an untouched page drains it (mlock_fixup() -> lru_add_drain())
        # and locks nothing.
        probe = mmap.mmap(-1, mmap.PAGESIZE)
        paddr = ctypes.addressof(ctypes.c_char.from_buffer(probe))
        assert libc.mlock2(ctypes.c_void_p(paddr), mmap.PAGESIZE, 1) == 0
        assert libc.munlock(ctypes.c_void_p(paddr), mmap.PAGESIZE) == 0
        mark = len(dmesg())
        assert write(STAT_REFRESH, "1\n") == 0
        new = dmesg()[mark:]
    finally:
        done.set()
        t.join()
        set_mask("")
        del buf
    assert not [line for line in new if "vmstat_refresh" in line], new


# ---------------------------------------------------------------- concurrency

@dataclass(frozen=True)
class Window:
    """From the return of one mask write to the start of the next: the
    time in which that write's mask, and no other, is in force."""
    opens: int      # ns, CLOCK_MONOTONIC
    closes: int
    blocks: bool    # the mask holds the blocked CPU


def windows(writes: list[tuple[int, int, bool]], until: int) -> list[Window]:
    """The windows of a sequence of (start, return, blocks) writes, the
    first from the cleared mask the test starts with."""
    if not writes:
        return [Window(0, until, False)]
    return [Window(0, writes[0][0], False)] + [
        Window(ret, writes[k + 1][0] if k + 1 < len(writes) else until, blocks)
        for k, (_, ret, blocks) in enumerate(writes)]


def window_of(wins: list[Window], start: int, end: int) -> Window | None:
    """The window holding all of [start, end], or None if a write overlaps it."""
    k = bisect.bisect_right([w.opens for w in wins], start) - 1
    return wins[k] if k >= 0 and end < wins[k].closes else None


def _worker(fn, release: tuple[int, int]) -> tuple[int, int]:
    """fn() in a forked process: (pid, the pipe its pickled result comes
    on); it then waits until the write end of the ``release`` pipe is
    closed, and exits."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(release[1])
        try:
            payload = ("ok", fn())
        except BaseException:  # noqa: BLE001 - everything goes back to the parent
            payload = ("err", traceback.format_exc())
        with os.fdopen(w, "wb") as f:
            pickle.dump(payload, f)
        os.read(release[0], 1)
        os._exit(0)
    os.close(w)
    return pid, r


def _result(worker: tuple[int, int]) -> tuple[str, object]:
    with os.fdopen(worker[1], "rb") as f:
        return pickle.loads(f.read())


def test_writer_racing_readers_every_result_matches_the_mask_in_force(cpus):
    """One process flips the mask between the blocked CPU and empty while
    others loop on perf_event_open on that CPU, and on clocksource reads and
    writes (of the one in use), for a few seconds; each call is timed on
    CLOCK_MONOTONIC.

    "The new mask is in force for every operation that starts after the
    write returns": an open that ran wholly between two writes must give
    EPERM if the first of them blocked the CPU and succeed if it did not.
    And no perf IPI may reach the blocked CPU while a blocking mask is in
    force: the kernel's own stamps (trace_clock mono) of each store's entry
    and return (a kprobe and a kretprobe on block_interf_store) and of the
    IPIs queued to that CPU (csd_queue_cpu) must never put an IPI between a
    blocking store's return and the next store, which fails a kernel that
    drops the read side between the check and the installation (a writer
    then completes in between). Events stay open until the end, so that no
    close sends its IPI during the race."""
    blocked, _ = cpus
    store = kprobe("isol_mask_store", "block_interf_store")
    stored = kprobe("isol_mask_stored", "block_interf_store", ret=True)
    # A free window holds a few allowed opens, however slow the kernel
    # (a debug kernel's are ten times a plain one's).
    took = []
    for _ in range(5):
        t0 = time.monotonic()
        fd, err = perf_open(blocked)
        took.append(time.monotonic() - t0)
        assert err == 0, os.strerror(err)
        os.close(fd)
    free_window = max(0.002, 4 * sorted(took)[2])
    deadline = time.monotonic() + 8.0
    current = (CLOCKSOURCE / "current_clocksource").read_text().strip()
    release_r, release_w = os.pipe()

    def writer():
        writes, bad, flip = [], set(), 0
        while time.monotonic() < deadline:
            blocks = flip % 2 == 0
            t0 = time.monotonic_ns()
            err = write(MASK, (f"{blocked}" if blocks else "") + "\n")
            t1 = time.monotonic_ns()
            if err:
                bad.add(err)
            else:
                writes.append((t0, t1, blocks))
            flip += 1
            # Windows in which this mask alone is in force: long free ones,
            # so that opens are on their way when the next write blocks.
            time.sleep(0.0002 if blocks else free_window)
        t0 = time.monotonic_ns()
        write(MASK, "\n")
        writes.append((t0, time.monotonic_ns(), False))
        return writes, bad

    def perf():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        opens, held = [], []
        while time.monotonic() < deadline and len(held) < min(hard, 1 << 16) - 100:
            t0 = time.monotonic_ns()
            fd, err = perf_open(blocked)
            opens.append((t0, time.monotonic_ns(), err))
            if fd >= 0:
                held.append(fd)
        return opens

    def clocksource():
        bad, count = set(), 0
        while time.monotonic() < deadline:
            (CLOCKSOURCE / "current_clocksource").read_text()
            err = write(CLOCKSOURCE / "current_clocksource", current + "\n")
            if err:
                bad.add(err)
            count += 1
        return bad, count

    # Processes, not threads: no interpreter lock serialises the writer
    # with the readers. Each sends its result, then waits to be released,
    # so that a perf process closes its events (an IPI each) only once the
    # race and its trace are over.
    workers: list[tuple[int, int]] = []
    try:
        with Trace("csd/csd_queue_cpu", f"cpu == {blocked}", clock="mono", also=(store, stored)) as trace:
            workers = [_worker(fn, (release_r, release_w)) for fn in (writer, perf, perf, perf, perf, clocksource)]
            results = [_result(w) for w in workers]
    finally:
        os.close(release_w)          # releases every worker
        os.close(release_r)
        for pid, _ in workers:
            os.waitpid(pid, 0)
        write(MASK, "\n")
    errors = [r[1] for r in results if r[0] == "err"]
    assert not errors, errors[0]
    (writes, writer_bad), *opens, (clocksource_bad, clocksource_count) = [r[1] for r in results]
    bad = {"writer": writer_bad, "clocksource": clocksource_bad}
    counts = {"writer": len(writes), "clocksource": clocksource_count}
    assert not bad["writer"] and not bad["clocksource"], bad
    assert counts["writer"] > 10 and counts["clocksource"] > 10, counts
    wins = windows(writes, time.monotonic_ns())
    checked = {True: 0, False: 0}
    wrong = []
    for start, end, err in [o for each in opens for o in each]:
        win = window_of(wins, start, end)
        if win is None:
            assert err in (0, errno.EPERM), os.strerror(err)
            continue
        checked[win.blocks] += 1
        if err != (errno.EPERM if win.blocks else 0):
            wrong.append(f"open at {start} under a mask that {'blocks' if win.blocks else 'frees'} "
                         f"CPU {blocked} (in force {win.opens}-{win.closes}): {os.strerror(err) if err else 'success'}")
    assert not wrong, f"{len(wrong)} results against the mask in force, e.g. {wrong[:3]}"
    assert checked[True] > 10 and checked[False] > 10, f"too few opens between writes to judge: {checked}"
    # The same windows on the kernel's clock: from each store's return to
    # the next store's entry. One writer process: the stores are in order.
    entries, returns = trace.times_ns(r"isol_mask_store:"), trace.times_ns(r"isol_mask_stored:")
    assert len(entries) == len(returns) == len(writes), (len(entries), len(returns), len(writes))
    kernel_wins = windows([(s, r, w[2]) for s, r, w in zip(entries, returns, writes)], time.monotonic_ns())
    late = []
    for stamp in trace.times_ns(r"func=remote_function"):
        win = window_of(kernel_wins, stamp, stamp)
        if win is not None and win.blocks:
            late.append(f"IPI at {stamp} under the mask in force {win.opens}-{win.closes}")
    assert not late, f"{len(late)} perf IPIs reached CPU {blocked} while it was blocked, e.g. {late[:3]}"
    fd, err = perf_open(blocked)
    assert err == 0, os.strerror(err)
    os.close(fd)


# ---------------------------------------------------------------- API

def test_only_the_variants_a_converted_path_uses_exist(cpus):
    """No _fail variant without a caller: the ones no converted path uses are
    not in the kernel."""
    names = {line.split()[2] for line in Path("/proc/kallsyms").read_text().splitlines() if "_fail" in line}
    unused = {"smp_call_function_many_fail", "stop_machine_cpuslocked_fail", "smp_call_function_single_fail"}
    assert not unused & names, sorted(unused & names)
    assert {"queue_work_on_fail", "stop_machine_fail"} <= names
