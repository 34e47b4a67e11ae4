"""Task isolation prctl interface (patches/task-isolation), held to
INTERFACE.md "Series 1": every row of the table, inheritance, execve, an
observable effect of the quiesce, and the samples.

Each scenario runs in a fresh child process: isolation data belongs to a
task and survives in it, so tests must not share one.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from child import in_child
from cpulist import cpulist
from kernel_config import configured_out
from kstat import vmstat
from tracing import Trace, kprobe
from programs import DEFERRED_FPUT, TASK_ISOLATION_UAPI, USERLOOP_DIR, USERLOOP_SOURCES, HeaderMissing, constants, obtain, \
    userloop_sample

SERIES = "task-isolation"

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
libc.prctl.restype = ctypes.c_int
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mmap.restype = ctypes.c_void_p
libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mlock2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MLOCK_ONFAULT = 1
PAGE = mmap.PAGESIZE


class InheritControl(ctypes.Structure):
    _fields_ = [("inherit_mask", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 7)]


# ---------------------------------------------------------------- helpers

def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    ret = libc.prctl(option, a2, a3, a4, a5)
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl({option}, {a2:#x}, {a3:#x}, {a4:#x}, {a5:#x}): {os.strerror(e)}")
    return ret


def prctl_errno(option: int, *args: int) -> int:
    """The errno a call fails with (0 if it succeeds)."""
    try:
        prctl(option, *args)
    except OSError as exc:
        return exc.errno
    return 0


@pytest.fixture(scope="module")
def c(headers, expected_series) -> dict[str, int]:
    """The interface's constants, from the installed headers; absent -> fail
    when the series is expected, skip when it is not."""
    if configured_out("CONFIG_TASK_ISOLATION"):
        pytest.skip("kernel built with CONFIG_TASK_ISOLATION=n (test_configured_out.py checks it)")

    def absent(why: str):
        if SERIES in expected_series:
            pytest.fail(f"{SERIES} series expected but the feature is absent: {why}")
        pytest.skip(f"{SERIES} series not applied to this kernel")

    try:
        consts = constants(TASK_ISOLATION_UAPI, headers)
    except HeaderMissing as exc:
        absent(str(exc))
    if prctl_errno(consts["PR_ISOL_FEAT"], 0) == errno.EINVAL:
        absent("prctl(PR_ISOL_FEAT, 0) fails with EINVAL (CONFIG_TASK_ISOLATION off, or no such option)")
    assert consts["sizeof(struct task_isol_inherit_control)"] == ctypes.sizeof(InheritControl)
    return consts


def state(c) -> dict[str, int]:
    ctl = InheritControl()
    prctl(c["PR_ISOL_GET_INT"], c["INHERIT_CFG"], ctypes.addressof(ctl))
    return {"conf": prctl(c["PR_ISOL_GET"], 0), "quiesce": prctl(c["PR_ISOL_GET"], c["ISOL_F_QUIESCE"]),
            "active": prctl(c["PR_ISOL_CTRL_GET"]), "inherit": ctl.inherit_mask}


def set_inherit(c, mask: int) -> None:
    ctl = InheritControl(inherit_mask=mask)
    prctl(c["PR_ISOL_SET_INT"], c["INHERIT_CFG"], ctypes.addressof(ctl))


def configure_and_activate(c) -> None:
    prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
    prctl(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"])


def unknown_bit(known: int) -> int:
    bit = 1
    while bit & known:
        bit <<= 1
    return bit


NOTHING = {"conf": 0, "quiesce": 0, "active": 0, "inherit": 0}


# ---------------------------------------------------------------- the table

def test_feat_lists_supported_features_and_quiesce_bits(c):
    def run():
        return prctl(c["PR_ISOL_FEAT"], 0), prctl(c["PR_ISOL_FEAT"], c["ISOL_F_QUIESCE"])
    feats, quiesce = in_child(run)
    assert feats & c["ISOL_F_QUIESCE"]
    assert quiesce & c["ISOL_F_QUIESCE_VMSTATS"]


def test_feat_unknown_feature_is_einval(c):
    def run():
        return prctl_errno(c["PR_ISOL_FEAT"], unknown_bit(prctl(c["PR_ISOL_FEAT"], 0)))
    assert in_child(run) == errno.EINVAL


def test_nothing_configured_at_start(c):
    assert in_child(state, c) == NOTHING


def test_set_then_get_configuration_changes_no_activation(c):
    def run():
        prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
        return state(c)
    s = in_child(run)
    assert s["conf"] == c["ISOL_F_QUIESCE"]
    assert s["quiesce"] == c["ISOL_F_QUIESCE_VMSTATS"]
    assert s["active"] == 0  # configuring alone activates nothing


@pytest.mark.parametrize("what", ["unknown quiesce bit", "unknown feature", "feature 0"])
def test_set_refuses_unknown_bits_and_features(c, what):
    def run():
        supported = prctl(c["PR_ISOL_FEAT"], c["ISOL_F_QUIESCE"])
        args = {"unknown quiesce bit": (c["ISOL_F_QUIESCE"], unknown_bit(supported)),
                "unknown feature": (unknown_bit(prctl(c["PR_ISOL_FEAT"], 0)), c["ISOL_F_QUIESCE_VMSTATS"]),
                "feature 0": (0, c["ISOL_F_QUIESCE_VMSTATS"])}[what]
        return prctl_errno(c["PR_ISOL_SET"], *args), state(c)
    err, s = in_child(run)
    assert err == errno.EINVAL
    assert s == NOTHING


def test_get_unknown_feature_is_einval(c):
    def run():
        return prctl_errno(c["PR_ISOL_GET"], unknown_bit(prctl(c["PR_ISOL_FEAT"], 0)))
    assert in_child(run) == errno.EINVAL


def test_set_mask_zero_removes_configuration_and_deactivates(c):
    def run():
        configure_and_activate(c)
        prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], 0)
        return state(c)
    assert in_child(run) == NOTHING


def test_ctrl_set_activates_and_deactivates(c):
    def run():
        prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
        rc = prctl(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"])
        active = prctl(c["PR_ISOL_CTRL_GET"])
        prctl(c["PR_ISOL_CTRL_SET"], 0)
        return rc, active, state(c)
    rc, active, after = in_child(run)
    assert rc == 0 and active == c["ISOL_F_QUIESCE"]
    assert after["active"] == 0 and after["conf"] == c["ISOL_F_QUIESCE"]  # configuration stays


@pytest.mark.parametrize("configured", [False, True])
def test_ctrl_set_refuses_unconfigured_or_unknown_feature(c, configured):
    def run():
        if configured:
            prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
        unknown = unknown_bit(prctl(c["PR_ISOL_FEAT"], 0))
        # unconfigured: QUIESCE itself is refused; configured: an unknown feature is
        mask = (c["ISOL_F_QUIESCE"] | unknown) if configured else c["ISOL_F_QUIESCE"]
        return prctl_errno(c["PR_ISOL_CTRL_SET"], mask), prctl(c["PR_ISOL_CTRL_GET"])
    err, active = in_child(run)
    assert err == errno.EINVAL
    assert active == 0


def test_inherit_control_roundtrip(c):
    def run():
        before = state(c)["inherit"]
        set_inherit(c, c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"])
        return before, state(c)["inherit"]
    assert in_child(run) == (0, c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"])


@pytest.mark.parametrize("what", ["unknown cmd", "unknown bit", "active without conf", "nonzero pad"])
def test_set_int_errors(c, what):
    def run():
        ctl = InheritControl(inherit_mask=c["ISOL_INHERIT_CONF"])
        cmd = c["INHERIT_CFG"]
        if what == "unknown cmd":
            cmd += 1000
        elif what == "unknown bit":
            ctl.inherit_mask = unknown_bit(c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"])
        elif what == "active without conf":
            ctl.inherit_mask = c["ISOL_INHERIT_ACTIVE"]
        else:
            ctl.pad[3] = 1
        return prctl_errno(c["PR_ISOL_SET_INT"], cmd, ctypes.addressof(ctl)), state(c)["inherit"]
    err, inherit = in_child(run)
    assert err == errno.EINVAL
    assert inherit == 0


def test_get_int_unknown_cmd_is_einval(c):
    def run():
        ctl = InheritControl()
        return prctl_errno(c["PR_ISOL_GET_INT"], c["INHERIT_CFG"] + 1000, ctypes.addressof(ctl))
    assert in_child(run) == errno.EINVAL


@pytest.mark.parametrize("option", ["PR_ISOL_SET_INT", "PR_ISOL_GET_INT"])
@pytest.mark.parametrize("pointer", [0, 1, 0xFFFFFFFFFFFFF000])
def test_int_bad_pointer_is_efault(c, option, pointer):
    assert in_child(lambda: prctl_errno(c[option], c["INHERIT_CFG"], pointer)) == errno.EFAULT


# Each option with one of the arguments the spec requires to be 0 set nonzero.
NONZERO = [
    ("PR_ISOL_FEAT", 3), ("PR_ISOL_FEAT", 4), ("PR_ISOL_FEAT", 5),
    ("PR_ISOL_GET", 3), ("PR_ISOL_GET", 4), ("PR_ISOL_GET", 5),
    ("PR_ISOL_SET", 4), ("PR_ISOL_SET", 5),
    ("PR_ISOL_CTRL_GET", 2), ("PR_ISOL_CTRL_GET", 3), ("PR_ISOL_CTRL_GET", 4), ("PR_ISOL_CTRL_GET", 5),
    ("PR_ISOL_CTRL_SET", 3), ("PR_ISOL_CTRL_SET", 4), ("PR_ISOL_CTRL_SET", 5),
    ("PR_ISOL_GET_INT", 4), ("PR_ISOL_GET_INT", 5),
    ("PR_ISOL_SET_INT", 4), ("PR_ISOL_SET_INT", 5),
]


@pytest.mark.parametrize("option, position", NONZERO, ids=[f"{o}-arg{p}" for o, p in NONZERO])
def test_nonzero_unused_argument_is_einval(c, option, position):
    def run():
        prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
        ctl = InheritControl(inherit_mask=c["ISOL_INHERIT_CONF"])
        valid = {  # arguments that make each call succeed
            "PR_ISOL_FEAT": [0, 0, 0, 0], "PR_ISOL_GET": [0, 0, 0, 0],
            "PR_ISOL_SET": [c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"], 0, 0],
            "PR_ISOL_CTRL_GET": [0, 0, 0, 0], "PR_ISOL_CTRL_SET": [c["ISOL_F_QUIESCE"], 0, 0, 0],
            "PR_ISOL_GET_INT": [c["INHERIT_CFG"], ctypes.addressof(ctl), 0, 0],
            "PR_ISOL_SET_INT": [c["INHERIT_CFG"], ctypes.addressof(ctl), 0, 0],
        }[option]
        ok = prctl_errno(c[option], *valid)
        args = list(valid)
        args[position - 2] = 1
        before = state(c)
        err = prctl_errno(c[option], *args)
        return ok, err, before, state(c)
    ok, err, before, after = in_child(run)
    assert ok == 0, "the valid form of the call must succeed"
    assert err == errno.EINVAL
    assert before == after


def test_no_privilege_needed(c):
    def run():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        configure_and_activate(c)
        set_inherit(c, c["ISOL_INHERIT_CONF"])
        return os.geteuid(), state(c)
    euid, s = in_child(run)
    assert euid == 65534
    assert s["active"] == c["ISOL_F_QUIESCE"]


# ---------------------------------------------------------------- inheritance

def _fork_state(c) -> dict[str, int]:
    """State of a child forked from the current task."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, json.dumps(state(c)).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    os.waitpid(pid, 0)
    os.close(r)
    return json.loads(data)


def _in_thread(fn, *args):
    """Run fn(*args) in a new thread of this task; return its result or re-raise its failure."""
    out: dict[str, object] = {}

    def body():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _thread_state(c) -> dict[str, int]:
    return _in_thread(state, c)


def _setup(c, inherit: int | None, order: str = "conf-first") -> None:
    if order == "inherit-first" and inherit is not None:
        set_inherit(c, inherit)
    configure_and_activate(c)
    if order == "conf-first" and inherit is not None:
        set_inherit(c, inherit)


def test_child_inherits_nothing_by_default(c):
    def run():
        _setup(c, None)
        return _fork_state(c), _thread_state(c)
    child, thread = in_child(run)
    assert child == NOTHING and thread == NOTHING


@pytest.mark.parametrize("order", ["conf-first", "inherit-first"])
def test_inherit_conf_passes_configuration_not_activation(c, order):
    def run():
        _setup(c, c["ISOL_INHERIT_CONF"], order)
        return _fork_state(c), _thread_state(c)
    for s in in_child(run):
        assert s == {"conf": c["ISOL_F_QUIESCE"], "quiesce": c["ISOL_F_QUIESCE_VMSTATS"], "active": 0,
                     "inherit": c["ISOL_INHERIT_CONF"]}


def test_inherit_conf_active_passes_activation(c):
    mask = c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"]

    def run():
        _setup(c, mask)
        return _fork_state(c), _thread_state(c)
    for s in in_child(run):
        assert s == {"conf": c["ISOL_F_QUIESCE"], "quiesce": c["ISOL_F_QUIESCE_VMSTATS"],
                     "active": c["ISOL_F_QUIESCE"], "inherit": mask}


@pytest.mark.parametrize("inherit", ["CONF", "CONF|ACTIVE"])
def test_grandchildren_inherit(c, inherit):
    mask = c["ISOL_INHERIT_CONF"] | (c["ISOL_INHERIT_ACTIVE"] if "ACTIVE" in inherit else 0)

    def run():
        _setup(c, mask)
        return in_child(_fork_state, c)  # fork inside a child of this task
    s = in_child(run)
    assert s["conf"] == c["ISOL_F_QUIESCE"] and s["inherit"] == mask
    assert s["active"] == (c["ISOL_F_QUIESCE"] if "ACTIVE" in inherit else 0)


STATE_SCRIPT = """
import ctypes, json, sys
c = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
class Ctl(ctypes.Structure):
    _fields_ = [("inherit_mask", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 7)]
ctl = Ctl()
assert libc.prctl(c["PR_ISOL_GET_INT"], c["INHERIT_CFG"], ctypes.addressof(ctl), 0, 0) == 0
print(json.dumps({"conf": libc.prctl(c["PR_ISOL_GET"], 0, 0, 0, 0),
                  "quiesce": libc.prctl(c["PR_ISOL_GET"], c["ISOL_F_QUIESCE"], 0, 0, 0),
                  "active": libc.prctl(c["PR_ISOL_CTRL_GET"], 0, 0, 0, 0), "inherit": ctl.inherit_mask}))
"""


def test_configuration_and_state_survive_execve(c):
    def run():
        _setup(c, c["ISOL_INHERIT_CONF"])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            # This child inherited CONF only; activate it again, then exec.
            prctl(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"])
            os.dup2(w, 1)
            os.execv(sys.executable, [sys.executable, "-c", STATE_SCRIPT, json.dumps(c)])
        os.close(w)
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
        os.waitpid(pid, 0)
        return json.loads(out)
    assert in_child(run) == {"conf": c["ISOL_F_QUIESCE"], "quiesce": c["ISOL_F_QUIESCE_VMSTATS"],
                             "active": c["ISOL_F_QUIESCE"], "inherit": c["ISOL_INHERIT_CONF"]}


# ---------------------------------------------------------------- the quiesce

def isolated_cpu() -> int:
    text = Path("/sys/devices/system/cpu/isolated").read_text().strip()
    if not text:
        pytest.fail("the guest has no isolated CPU (profile without isolcpus=)")
    return max(int(x) for x in re.split(r"[-,]", text))


def stat_threshold(cpu: int) -> int:
    """The smallest per-CPU "vm stats threshold" of the CPU in /proc/zoneinfo."""
    thresholds, current = [], None
    for line in Path("/proc/zoneinfo").read_text().splitlines():
        m = re.match(r"\s+cpu: (\d+)", line)
        if m:
            current = int(m.group(1))
        m = re.match(r"\s+vm stats threshold: (\d+)", line)
        if m and current == cpu:
            thresholds.append(int(m.group(1)))
    assert thresholds, "no per-CPU threshold in /proc/zoneinfo"
    return min(thresholds)


def anon_pages(n: int) -> int:
    """Address of n fresh private anonymous pages (not yet faulted in)."""
    addr = libc.mmap(None, n * PAGE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    return addr


def settle_vmstats() -> None:
    """Start from zero differentials on every CPU, this one's batches included.

    A previous test's child that exited with pages mlocked left their
    munlocks in this CPU's mlock batch; they reach the differentials only
    when the batch drains, which the next mlock() does first and would
    cancel what a test measures. mlock2(MLOCK_ONFAULT) of an untouched page
    drains this CPU's batches (mlock_fixup() calls lru_add_drain()) and
    locks nothing; stat_refresh then folds every CPU's differentials."""
    addr = anon_pages(1)
    assert libc.mlock2(addr, PAGE, MLOCK_ONFAULT) == 0, os.strerror(ctypes.get_errno())
    assert libc.munmap(addr, PAGE) == 0
    Path("/proc/sys/vm/stat_refresh").write_text("1")


def _pages_to_use(cpu: int) -> int:
    n = stat_threshold(cpu) // 2
    if n < 2:
        pytest.fail(f"vm stats threshold {stat_threshold(cpu)} on CPU {cpu} is too small to tell folding apart")
    return n


def _mlock_delta(c, cpu: int, n: int, mode: str) -> int:
    """nr_mlock seen globally right after mlock()ing n pages on `cpu`."""
    os.sched_setaffinity(0, {cpu})
    if mode in ("active", "deactivated"):
        configure_and_activate(c)
    if mode == "deactivated":
        prctl(c["PR_ISOL_CTRL_SET"], 0)
    settle_vmstats()
    addr = anon_pages(n)
    before = vmstat("nr_mlock")
    assert libc.mlock(addr, n * PAGE) == 0, os.strerror(ctypes.get_errno())
    return vmstat("nr_mlock") - before


def test_quiesce_folds_vmstats_on_syscall_return(c):
    """With the quiesce active, the pages one mlock() locked show in the
    global nr_mlock as soon as the call returns; without it (same kernel,
    same CPU, same number of pages) they stay in the per-CPU differential."""
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    assert in_child(_mlock_delta, c, cpu, n, "active") == n
    assert in_child(_mlock_delta, c, cpu, n, "inactive") == 0


def test_deactivation_stops_the_quiesce(c):
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    assert in_child(_mlock_delta, c, cpu, n, "deactivated") == 0


def _activation_fold(c, cpu: int, n: int) -> tuple[int, int]:
    """mlock n pages while inactive (the differential stays per-CPU), then
    activate: the activating prctl's own return folds it."""
    os.sched_setaffinity(0, {cpu})
    prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])  # configured, not active
    settle_vmstats()
    addr = anon_pages(n)
    before = vmstat("nr_mlock")
    assert libc.mlock(addr, n * PAGE) == 0, os.strerror(ctypes.get_errno())
    while_configured = vmstat("nr_mlock") - before
    prctl(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"])
    return while_configured, vmstat("nr_mlock") - before


def test_configuring_alone_quiesces_nothing_activation_folds_at_once(c):
    """Configuration changes nothing; the PR_ISOL_CTRL_SET that activates
    quiesces on its own return, folding what was left behind before."""
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    assert in_child(_activation_fold, c, cpu, n) == (0, n)


def _munlock_delta(c, cpu: int, n: int, active: bool) -> int:
    os.sched_setaffinity(0, {cpu})
    addr = anon_pages(n)
    assert libc.mlock(addr, n * PAGE) == 0
    if active:
        configure_and_activate(c)
    settle_vmstats()
    before = vmstat("nr_mlock")
    assert libc.munlock(addr, n * PAGE) == 0
    return vmstat("nr_mlock") - before


def test_quiesce_folds_decrements_too(c):
    """munlock(): the global counter drops at once with the quiesce, not without."""
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    assert in_child(_munlock_delta, c, cpu, n, True) == -n
    assert in_child(_munlock_delta, c, cpu, n, False) == 0


# ---------------------------------------------------------------- the samples

def test_sample_builds_against_installed_headers_and_runs(c, headers):
    ksrc = Path(os.environ["ISOLHARNESS_KSRC"])
    recipe = userloop_sample(ksrc)
    if recipe is None:
        pytest.fail(f"{ksrc / USERLOOP_DIR} lacks some of {', '.join(USERLOOP_SOURCES)}")
    built = obtain(recipe, headers)
    assert built.exe is not None, built.errors
    cpu = isolated_cpu()
    run = subprocess.run([str(built.exe), "1000000"], capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert run.returncode == 0, run.stderr
    assert "task isolation loop done: 1000000 iterations" in run.stdout
    bad = subprocess.run([str(built.exe), "nonsense"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage:" in bad.stderr


# ------------------------------------------------ the fold comes last

ROUNDS = 3


def _deferred_fput_drops(headers: Path, cpu: int, n: int) -> tuple[int, int]:
    """Run the deferred_fput program (programs.py) on ``cpu`` with n pages,
    from this process on a housekeeping CPU: (drop of the global nr_shmem
    seen while it spins in user space after the munmap() whose task work
    freed the pages, drop seen after its next system call)."""
    built = obtain(DEFERRED_FPUT, headers)
    assert built.exe is not None, built.errors
    os.sched_setaffinity(0, {0})
    fd = os.memfd_create("isolharness-flag")
    os.ftruncate(fd, PAGE)
    flag = mmap.mmap(fd, PAGE)
    flag[0] = 0                                      # its page is allocated before the base is read
    proc = subprocess.Popen([str(built.exe), str(n), str(fd)], pass_fds=(fd,), stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    try:
        def wait_for(value: int) -> None:
            deadline = time.monotonic() + 60
            while flag[0] != value:
                if proc.poll() is not None:
                    pytest.fail(f"deferred_fput exited with {proc.returncode} before step {value}: "
                                f"{proc.stderr.read().decode(errors='replace')}")
                assert time.monotonic() < deadline, f"deferred_fput never reached step {value}"
        wait_for(1)
        Path("/proc/sys/vm/stat_refresh").write_text("1")   # leave no differential anywhere
        # Its kworker restarted the tick there; let the tick stop again
        # (that folds too) before the munmap().
        time.sleep(0.2)
        base = vmstat("nr_shmem")
        flag[0] = 2
        wait_for(3)
        spinning = base - vmstat("nr_shmem")           # at once: no interrupt is likely to come in between
        flag[0] = 4
        wait_for(5)
        after = base - vmstat("nr_shmem")
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        flag.close()
        os.close(fd)
    return spinning, after


def test_the_fold_runs_after_task_work_on_the_way_back(c, headers):
    """The fold is the last thing before user space (INTERFACE.md): the pages
    a deferred fput() frees in task work, after the system call's exit work,
    must be in the global counters while the task spins in user space, not
    only after its next system call. The program that frees them takes no
    fault and no system call while it spins; the reading is taken at once,
    in three rounds, so that a stray interrupt's exit (which folds too)
    cannot hide a fold placed too early."""
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    rounds = [in_child(_deferred_fput_drops, headers, cpu, n) for _ in range(ROUNDS)]
    assert all(after == n for _, after in rounds), \
        f"the {n} freed pages never all reached nr_shmem (drops after the next call: {rounds}): the test measured nothing"
    assert all(spinning == n for spinning, _ in rounds), \
        (f"while the active task spun in user space nr_shmem had dropped by {[s for s, _ in rounds]}, "
         f"not {n} each time: the fold ran before the task work")


# ------------------------------------------------ masks fit prctl's int

def test_masks_fit_in_prctls_non_negative_int(c):
    """Masks come back as prctl()'s int return value: the ABI only ever uses
    bits 0-30 for them, and bit 31 and above are refused, changing nothing."""
    for name, value in c.items():
        if name.startswith("ISOL_F_"):
            assert 0 < value < 1 << 31, f"{name} = {value:#x} cannot be returned through prctl's int"

    def run():
        configure_and_activate(c)
        got = [prctl(c["PR_ISOL_FEAT"], 0), prctl(c["PR_ISOL_FEAT"], c["ISOL_F_QUIESCE"]),
               prctl(c["PR_ISOL_GET"], 0), prctl(c["PR_ISOL_GET"], c["ISOL_F_QUIESCE"]), prctl(c["PR_ISOL_CTRL_GET"])]
        before = state(c)
        errs = [prctl_errno(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], 1 << 31),
                prctl_errno(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], 1 << 63),
                prctl_errno(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"] | 1 << 31)]
        return got, errs, before, state(c)
    got, errs, before, after = in_child(run)
    assert all(0 < v < 1 << 31 for v in got), got
    assert errs == [errno.EINVAL] * 3 and before == after


# ------------------------------------------------ kernel-created workers

SYS_io_uring_setup = 425
IORING_SETUP_SQPOLL = 1 << 1


def _isolation_allocations(c, make) -> int:
    """task_isol_fork() allocations while ``make`` creates a task of this
    one, set to pass on its configuration and activation."""
    configure_and_activate(c)
    set_inherit(c, c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"])
    with Trace("kmem/kmalloc", "call_site.function == task_isol_fork") as trace:
        made = make()
    if made is not None:
        os.close(made)
    return len(trace.lines)


def _sqpoll_ring() -> int:
    params = ctypes.create_string_buffer(120)          # struct io_uring_params
    ctypes.memmove(ctypes.byref(params, 8), ctypes.byref(ctypes.c_uint32(IORING_SETUP_SQPOLL)), 4)
    fd = libc.syscall(SYS_io_uring_setup, 8, params)
    assert fd >= 0, f"io_uring_setup(SQPOLL): {os.strerror(ctypes.get_errno())}"
    return fd


def _thread() -> None:
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def test_kernel_created_user_workers_inherit_nothing(c):
    """io_uring's SQPOLL thread (a PF_IO_WORKER) never returns to user space
    and cannot clear what it got: it must not inherit isolation state, where
    a thread of the same task does."""
    libc.syscall.restype = ctypes.c_long
    assert in_child(_isolation_allocations, c, _thread) == 1, "the measurement does not see a thread inherit"
    assert in_child(_isolation_allocations, c, _sqpoll_ring) == 0, "the io_uring SQPOLL worker inherited"


# ------------------------------------------------ refused calls change nothing

def _refused_call(c, what: str) -> tuple[int, list[int], object, int]:
    """(option, arguments, object the arguments point into, errno expected)."""
    supported = prctl(c["PR_ISOL_FEAT"], c["ISOL_F_QUIESCE"])
    unknown_feature = unknown_bit(prctl(c["PR_ISOL_FEAT"], 0))
    ctl = InheritControl(inherit_mask=c["ISOL_INHERIT_CONF"])
    cfg, ptr = c["INHERIT_CFG"], ctypes.addressof(ctl)
    q, vm = c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"]
    if what.startswith("SET_INT pad byte "):
        ctl.pad[int(what.rsplit(" ", 1)[1])] = 1
        return c["PR_ISOL_SET_INT"], [cfg, ptr], ctl, errno.EINVAL
    if what == "SET_INT unknown bit":
        ctl.inherit_mask = unknown_bit(c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"])
    elif what == "SET_INT active without conf":
        ctl.inherit_mask = c["ISOL_INHERIT_ACTIVE"]
    calls = {
        "SET unknown quiesce bit": ("PR_ISOL_SET", [q, unknown_bit(supported)], errno.EINVAL),
        "SET known and unknown quiesce bits": ("PR_ISOL_SET", [q, vm | unknown_bit(supported)], errno.EINVAL),
        "SET unknown feature": ("PR_ISOL_SET", [unknown_feature, vm], errno.EINVAL),
        "SET feature 0": ("PR_ISOL_SET", [0, vm], errno.EINVAL),
        "SET nonzero arg4": ("PR_ISOL_SET", [q, vm, 1], errno.EINVAL),
        "CTRL_SET unknown feature": ("PR_ISOL_CTRL_SET", [q | unknown_feature], errno.EINVAL),
        "CTRL_SET nonzero arg3": ("PR_ISOL_CTRL_SET", [q, 1], errno.EINVAL),
        "SET_INT unknown cmd": ("PR_ISOL_SET_INT", [cfg + 1000, ptr], errno.EINVAL),
        "SET_INT unknown bit": ("PR_ISOL_SET_INT", [cfg, ptr], errno.EINVAL),
        "SET_INT active without conf": ("PR_ISOL_SET_INT", [cfg, ptr], errno.EINVAL),
        "SET_INT bad pointer": ("PR_ISOL_SET_INT", [cfg, 1], errno.EFAULT),
        "SET_INT nonzero arg4": ("PR_ISOL_SET_INT", [cfg, ptr, 1], errno.EINVAL),
    }
    option, args, expected = calls[what]
    return c[option], args, ctl, expected


REFUSED = ["SET unknown quiesce bit", "SET known and unknown quiesce bits", "SET unknown feature", "SET feature 0",
           "SET nonzero arg4", "CTRL_SET unknown feature", "CTRL_SET nonzero arg3", "SET_INT unknown cmd",
           "SET_INT unknown bit", "SET_INT active without conf", "SET_INT bad pointer", "SET_INT nonzero arg4",
           *(f"SET_INT pad byte {i}" for i in range(7))]


@pytest.mark.parametrize("call", REFUSED)
@pytest.mark.parametrize("start", ["empty", "full"])
def test_a_refused_call_changes_nothing(c, start, call):
    """Every error return leaves the task as it was, from nothing configured
    and from everything set (configured, active, passing both on): no setter
    applies part of a request, or resets anything, before refusing it."""
    def run():
        if start == "full":
            configure_and_activate(c)
            set_inherit(c, c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"])
        option, args, keep, expected = _refused_call(c, call)
        before = state(c)
        err = prctl_errno(option, *args)
        del keep
        return expected, err, before, state(c)
    expected, err, before, after = in_child(run)
    assert err == expected, f"{call}: {os.strerror(err) if err else 'success'}, not {os.strerror(expected)}"
    assert after == before, f"{call} changed the state it refused to change"
    if start == "full":
        assert before["active"] == c["ISOL_F_QUIESCE"], before


@pytest.mark.parametrize("inherit", ["nothing set", "CONF"])
def test_get_int_zero_fills_pad(c, inherit):
    """PR_ISOL_GET_INT writes the whole structure: the pad comes back zero
    whatever the buffer held, with or without isolation data."""
    def run():
        if inherit == "CONF":
            set_inherit(c, c["ISOL_INHERIT_CONF"])
        ctl = InheritControl(inherit_mask=0xFF)
        ctypes.memset(ctypes.addressof(ctl), 0xFF, ctypes.sizeof(ctl))
        prctl(c["PR_ISOL_GET_INT"], c["INHERIT_CFG"], ctypes.addressof(ctl))
        return ctl.inherit_mask, list(ctl.pad)
    mask, pad = in_child(run)
    assert mask == (c["ISOL_INHERIT_CONF"] if inherit == "CONF" else 0)
    assert pad == [0] * 7, f"pad bytes not written: {pad}"


def test_inherit_active_of_an_inactive_parent_is_inactive(c):
    """ISOL_INHERIT_ACTIVE passes the activation state, not the configuration
    as if it were active: a configured, inactive parent has inactive children."""
    mask = c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"]

    def run():
        prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
        set_inherit(c, mask)
        return state(c), _fork_state(c), _thread_state(c)
    parent, child, thread = in_child(run)
    assert parent["active"] == 0
    for s in (child, thread):
        assert s == {"conf": c["ISOL_F_QUIESCE"], "quiesce": c["ISOL_F_QUIESCE_VMSTATS"], "active": 0,
                     "inherit": mask}


# ------------------------------------------------ the effect in other tasks

def test_quiesce_in_a_thread_that_activated_itself(c):
    """Isolation state is per task: a thread that activates the quiesce folds
    on its own returns while the rest of its process never used the interface."""
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    assert in_child(_in_thread, _mlock_delta, c, cpu, n, "active") == n
    assert in_child(_in_thread, _mlock_delta, c, cpu, n, "inactive") == 0


EXEC_MLOCK = """
import json, sys
sys.path.insert(0, sys.argv[1])
import test_task_isolation as t
c, cpu, n = json.loads(sys.argv[2])
print(t._mlock_delta(c, cpu, n, "inactive"))
"""


def _exec_mlock_delta(c, cpu: int, n: int) -> int:
    out = subprocess.run([sys.executable, "-c", EXEC_MLOCK, str(Path(__file__).parent), json.dumps([c, cpu, n])],
                         capture_output=True, text=True, timeout=600)     # a debug kernel is slow
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def _inherited_delta(c, kind: str, cpu: int, n: int, mask: int) -> int:
    """The nr_mlock delta of a task that inherited from this one and made no
    prctl() call of its own."""
    configure_and_activate(c)
    set_inherit(c, mask)
    if kind == "fork":
        return in_child(_mlock_delta, c, cpu, n, "inactive")
    if kind == "thread":
        return _in_thread(_mlock_delta, c, cpu, n, "inactive")
    return _exec_mlock_delta(c, cpu, n)


@pytest.mark.parametrize("kind", ["fork", "thread", "execve"])
def test_quiesce_in_an_inheriting_child(c, kind):
    """A child that inherits ISOL_F_QUIESCE active (a forked process, a
    thread, a forked process after execve) quiesces on its returns as its
    parent does; one that inherits the configuration only does not."""
    cpu = isolated_cpu()
    n = _pages_to_use(cpu)
    both = c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"]
    assert in_child(_inherited_delta, c, kind, cpu, n, both) == n, "inherited activation does not quiesce"
    assert in_child(_inherited_delta, c, kind, cpu, n, c["ISOL_INHERIT_CONF"]) == 0


# ------------------------------------------------ zero cost
#
# Defining and enabling a kprobe patches kernel text, which interrupts every
# CPU: the tests that count what reaches an isolated CPU run before these
# (test_block_interf.py sorts first, and these are last in this file).

QUIESCE_ENTRY = "task_isol_quiesce"
CALLS = 200


def _quiesce_entries(c) -> dict[str, int]:
    """Entries into the quiesce by this task around CALLS getppid() calls,
    in each state of its life."""
    # The exit path calls into the interface only once some task has
    # activated (a static key): make sure one has, or the phases before
    # "active" would count nothing on any kernel.
    in_child(configure_and_activate, c)
    event = kprobe("isolharness_quiesce", QUIESCE_ENTRY)
    counts = {}

    def phase(name: str) -> None:
        with Trace(event, f"common_pid == {os.getpid()}") as trace:
            for _ in range(CALLS):
                os.getppid()
        counts[name] = len(trace.lines)

    phase("never used")
    set_inherit(c, c["ISOL_INHERIT_CONF"])
    phase("inherit control only")
    prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
    phase("configured")
    prctl(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"])
    phase("active")
    prctl(c["PR_ISOL_CTRL_SET"], 0)
    phase("deactivated")
    return counts


def test_the_quiesce_is_entered_only_while_active(c):
    """Cost: the out-of-line quiesce is never entered by a task that is not
    active (never used the interface, only set its inherit control, only
    configured, deactivated), and at least once per system call while active."""
    counts = in_child(_quiesce_entries, c)
    assert counts["active"] >= CALLS, counts
    assert {k: v for k, v in counts.items() if k != "active"} == dict.fromkeys(
        ["never used", "inherit control only", "configured", "deactivated"], 0), counts


MCL_CURRENT, MCL_FUTURE = 1, 2


def _vmstat_work_in_a_user_loop(c, cpu: int, activate: bool, seconds: float) -> tuple[int, int]:
    """In a child on `cpu`: vmstat differentials made for a while (so the
    shepherd queues vmstat_update there and it re-arms itself), then
    configured (and activated, which quiesces on its return), then a loop
    in user space that faults nothing in and makes no syscall. Returns the
    loop's start and end on CLOCK_MONOTONIC."""
    os.sched_setaffinity(0, {cpu})
    # Everything faulted in now, so that the loop below makes no page
    # fault, which would make new differentials on this CPU.
    assert libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0, os.strerror(ctypes.get_errno())
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        addr = anon_pages(16)
        ctypes.memset(addr, 1, 16 * PAGE)
        assert libc.munmap(addr, 16 * PAGE) == 0
    prctl(c["PR_ISOL_SET"], c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"])
    if activate:
        prctl(c["PR_ISOL_CTRL_SET"], c["ISOL_F_QUIESCE"])
    start = time.monotonic_ns()
    end = start + int(seconds * 1e9)
    now = start
    while now < end:
        now = time.monotonic_ns()
    return start, now


def _vmstat_updates_on(c, cpu: int, others: set[int], activate: bool) -> list[int]:
    """The runs of vmstat_update on `cpu` during that loop (trace times),
    this process kept on the `others` CPUs meanwhile."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, others)
    try:
        with Trace("workqueue/workqueue_execute_start", clock="mono") as trace:
            start, end = in_child(_vmstat_work_in_a_user_loop, c, cpu, activate, 3.5)
    finally:
        os.sched_setaffinity(0, saved)
    return [t for t in trace.times_ns(rf"\[{cpu:03d}\].*function vmstat_update\b") if start < t < end]


def test_the_quiesce_drops_the_pending_vmstat_work(c):
    """ISOL_F_QUIESCE_VMSTATS "drops that CPU's pending deferred vmstat work,
    so no vmstat work needs to run on that CPU later". On a housekeeping CPU
    (the shepherd queues no vmstat work on isolated ones), after a burst of
    differentials: configured alone, vmstat_update still runs there during a
    user loop (the control: the work was pending); active, it never does."""
    online = cpulist(Path("/sys/devices/system/cpu/online").read_text())
    housekeeping = [cpu for cpu in online if cpu not in cpulist(Path("/sys/devices/system/cpu/isolated").read_text())]
    if len(housekeeping) < 2:
        pytest.fail(f"this test needs two housekeeping CPUs, the guest has {housekeeping}")
    cpu, others = housekeeping[-1], set(housekeeping[:-1])
    inactive = _vmstat_updates_on(c, cpu, others, activate=False)
    assert inactive, f"no vmstat_update ran on CPU {cpu} in the loop of a configured, inactive task"
    active = _vmstat_updates_on(c, cpu, others, activate=True)
    assert not active, f"vmstat_update ran on CPU {cpu} {len(active)} times in the loop of an active task"
