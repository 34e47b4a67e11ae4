"""Seeded random calls held to a model of INTERFACE.md.

test_fuzz_prctl makes random PR_ISOL_* calls (random options, arguments,
unused arguments and pointers, forks, threads and execve in between) and,
after every call, compares the result and the task's whole state with what
the interface table says; test_fuzz_block_interf_writes does the same for
random writes to the block_interf file. Any other errno, a success where an
error is due (or the reverse), a state that moved on a refused call or a
child that inherits anything else fails the test with the seed and the call.

ISOLHARNESS_FUZZ_SEED fixes the seed (else one is drawn and printed),
ISOLHARNESS_FUZZ_CALLS the number of calls (default 2000); the harness
passes both from the host (harness/guest.py), and `make fuzz` runs 10,000
on the debug kernel. The same seed and count replay the same calls.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import random
import subprocess
import sys
import threading
from dataclasses import dataclass, replace

import pytest

from child import in_child
from cpulist import cpulist
from test_block_interf import MASK, cleared, cpus, write  # noqa: F401 - fixtures used below
from test_task_isolation import InheritControl, c, libc  # noqa: F401 - fixture used below

CALLS = int(os.environ.get("ISOLHARNESS_FUZZ_CALLS", "2000"))
SEED = int(os.environ.get("ISOLHARNESS_FUZZ_SEED", "0")) or random.SystemRandom().randrange(1, 2**32)
OPTIONS = ("PR_ISOL_FEAT", "PR_ISOL_GET", "PR_ISOL_SET", "PR_ISOL_CTRL_GET", "PR_ISOL_CTRL_SET",
           "PR_ISOL_GET_INT", "PR_ISOL_SET_INT")
# The arguments each option reads (arg2 ...); the rest must be 0.
USED = {"PR_ISOL_FEAT": 1, "PR_ISOL_GET": 1, "PR_ISOL_SET": 2, "PR_ISOL_CTRL_GET": 0, "PR_ISOL_CTRL_SET": 1,
        "PR_ISOL_GET_INT": 2, "PR_ISOL_SET_INT": 2}
PAGE = mmap.PAGESIZE
PROT_NONE = 0  # <sys/mman.h>; the mmap module has PROT_READ and PROT_WRITE only


@dataclass(frozen=True)
class State:
    quiesce: int    # configured quiesce mask (ISOL_F_QUIESCE configured iff nonzero)
    active: int     # active features
    inherit: int    # inherit_mask of INHERIT_CFG


def call(option: int, *args: int) -> tuple[int, int]:
    """(return value, 0) or (-1, errno)."""
    ret = libc.prctl(option, *args, *[0] * (4 - len(args)))
    return (ret, 0) if ret >= 0 else (-1, ctypes.get_errno())


def read_state(c) -> State:
    ctl = InheritControl()
    assert call(c["PR_ISOL_GET_INT"], c["INHERIT_CFG"], ctypes.addressof(ctl))[1] == 0
    return State(call(c["PR_ISOL_GET"], c["ISOL_F_QUIESCE"])[0], call(c["PR_ISOL_CTRL_GET"])[0], ctl.inherit_mask)


def inherited(c, s: State) -> State:
    if not s.inherit & c["ISOL_INHERIT_CONF"]:
        return State(0, 0, 0)
    return replace(s, active=s.active if s.inherit & c["ISOL_INHERIT_ACTIVE"] else 0)


class Memory:
    """Where the _INT calls point: a read-write struct, a read-only page,
    a struct that runs into an unmapped page, and addresses with nothing."""

    def __init__(self):
        self.area = mmap.mmap(-1, 3 * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.area))
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert libc.mprotect(base + PAGE, PAGE, mmap.PROT_READ) == 0
        assert libc.mprotect(base + 2 * PAGE, PAGE, PROT_NONE) == 0
        self.rw, self.ro, self.straddle = base, base + PAGE, base + 2 * PAGE - 4
        self.kinds = {"rw": self.rw, "ro": self.ro, "straddle": self.straddle, "null": 0, "one": 1,
                      "kernel": 0xFFFF888000000000, "top": 0xFFFFFFFFFFFFF000}

    def readable(self, kind: str) -> bool:
        return kind in ("rw", "ro")

    def writable(self, kind: str) -> bool:
        return kind == "rw"


def fail(seed: int, i: int, what: str, detail: str) -> None:
    pytest.fail(f"seed {seed}, call {i}: {what}: {detail}\n"
                f"replay: ISOLHARNESS_FUZZ_SEED={seed} ISOLHARNESS_FUZZ_CALLS={i + 1}", pytrace=False)


EXEC_STATE = r"""
import ctypes, json, sys
c = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
buf = ctypes.create_string_buffer(8)
assert libc.prctl(c["PR_ISOL_GET_INT"], c["INHERIT_CFG"], ctypes.addressof(buf), 0, 0) == 0
print(json.dumps([libc.prctl(c["PR_ISOL_GET"], c["ISOL_F_QUIESCE"], 0, 0, 0),
                  libc.prctl(c["PR_ISOL_CTRL_GET"], 0, 0, 0, 0), buf.raw[0]]))
"""


def _fuzz_prctl(c, seed: int, calls: int) -> int:
    rng = random.Random(seed)
    mem = Memory()
    features = call(c["PR_ISOL_FEAT"], 0)[0]
    quiesce_bits = call(c["PR_ISOL_FEAT"], c["ISOL_F_QUIESCE"])[0]
    assert features & c["ISOL_F_QUIESCE"] and quiesce_bits & c["ISOL_F_QUIESCE_VMSTATS"], (features, quiesce_bits)
    inherit_bits = c["ISOL_INHERIT_CONF"] | c["ISOL_INHERIT_ACTIVE"]
    model = read_state(c)
    assert model == State(0, 0, 0), model

    def value() -> int:
        return rng.choice([0, c["ISOL_F_QUIESCE"], c["ISOL_F_QUIESCE_VMSTATS"], features, quiesce_bits,
                           c["INHERIT_CFG"], c["INHERIT_CFG"] + 1, 1 << rng.randrange(64),
                           rng.getrandbits(64), 2**64 - 1, rng.randrange(16)])

    def ctl_bytes() -> bytes:
        mask = rng.choice([0, c["ISOL_INHERIT_CONF"], inherit_bits, c["ISOL_INHERIT_ACTIVE"],
                           1 << rng.randrange(8), rng.randrange(256)])
        pad = [0] * 7
        if rng.random() < 0.2:
            pad[rng.randrange(7)] = rng.randrange(1, 256)
        return bytes([mask, *pad])

    def check_child(i: int, kind: str) -> None:
        want = inherited(c, model)
        if kind == "thread":
            got: list[State] = []
            t = threading.Thread(target=lambda: got.append(read_state(c)))
            t.start()
            t.join()
            seen = got[0] if got else None
        elif kind == "fork":
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(w, json.dumps(list(vars(read_state(c)).values())).encode())
                os._exit(0)
            os.close(w)
            with os.fdopen(r) as f:
                seen = State(*json.loads(f.read()))
            os.waitpid(pid, 0)
        else:
            out = subprocess.run([sys.executable, "-c", EXEC_STATE, json.dumps(c)], capture_output=True,
                                 text=True, check=True).stdout
            seen = State(*json.loads(out))
        if seen != want:
            fail(seed, i, f"a {kind} child of a task in {model}", f"has {seen}, the interface says {want}")

    for i in range(calls):
        roll = rng.random()
        if roll < 0.01:
            check_child(i, "fork")
            continue
        if roll < 0.015:
            check_child(i, "thread")
            continue
        if roll < 0.0165:
            check_child(i, "exec")
            continue
        name = rng.choice(OPTIONS)
        used = USED[name]
        args = [value() for _ in range(used)] + [0] * (4 - used)
        for k in range(used, 4):
            if rng.random() < 0.05:
                args[k] = value() or 1
        errors: set[int] = set()
        if any(args[used:]):
            errors.add(errno.EINVAL)
        after, ret = model, 0
        pointer = None
        configured = c["ISOL_F_QUIESCE"] if model.quiesce else 0
        if name == "PR_ISOL_FEAT":
            table = {0: features, c["ISOL_F_QUIESCE"]: quiesce_bits}
            if args[0] in table:
                ret = table[args[0]]
            else:
                errors.add(errno.EINVAL)
        elif name == "PR_ISOL_GET":
            table = {0: configured, c["ISOL_F_QUIESCE"]: model.quiesce}
            if args[0] in table:
                ret = table[args[0]]
            else:
                errors.add(errno.EINVAL)
        elif name == "PR_ISOL_SET":
            if rng.random() < 0.5:
                args[0] = c["ISOL_F_QUIESCE"]
            if args[0] != c["ISOL_F_QUIESCE"] or args[1] & ~quiesce_bits:
                errors.add(errno.EINVAL)
            else:
                after = State(args[1], model.active if args[1] else 0, model.inherit)
        elif name == "PR_ISOL_CTRL_GET":
            ret = model.active
        elif name == "PR_ISOL_CTRL_SET":
            if args[0] & ~features or args[0] & ~configured:
                errors.add(errno.EINVAL)
            else:
                after = replace(model, active=args[0])
        else:
            if rng.random() < 0.7:
                args[0] = c["INHERIT_CFG"]
            if args[0] != c["INHERIT_CFG"]:
                errors.add(errno.EINVAL)
            pointer = rng.choice(list(mem.kinds)) if rng.random() < 0.3 else "rw"
            args[1] = mem.kinds[pointer]
            content = ctl_bytes()
            ctypes.memmove(mem.rw, content, 8)
            if name == "PR_ISOL_SET_INT":
                if not mem.readable(pointer):
                    errors.add(errno.EFAULT)
                else:
                    data = content if pointer == "rw" else bytes(8)
                    mask = data[0]
                    if (mask & ~inherit_bits or (mask & c["ISOL_INHERIT_ACTIVE"] and not
                                                 mask & c["ISOL_INHERIT_CONF"]) or any(data[1:])):
                        errors.add(errno.EINVAL)
                    else:
                        after = replace(model, inherit=mask)
            elif not mem.writable(pointer):
                errors.add(errno.EFAULT)
        what = f"prctl({name}, {', '.join(hex(a) for a in args)})" + (f" pointer {pointer}" if pointer else "")
        got, err = call(c[name], *args)
        if errors:
            if got != -1 or err not in errors:
                fail(seed, i, what, f"returned {got} ({os.strerror(err) if err else 'success'}) in {model}, "
                                    f"the interface says {sorted(os.strerror(e) for e in errors)}")
        elif err:
            fail(seed, i, what, f"failed with {os.strerror(err)} in {model}, the interface says success")
        elif got != ret:
            fail(seed, i, what, f"returned {got} in {model}, the interface says {ret}")
        elif name == "PR_ISOL_GET_INT" and ctypes.string_at(mem.rw, 8) != bytes([model.inherit, *[0] * 7]):
            fail(seed, i, what, f"filled {ctypes.string_at(mem.rw, 8).hex()} for inherit_mask {model.inherit:#x}")
        if not errors:
            model = after
        now = read_state(c)
        if now != model:
            fail(seed, i, what, f"left the task in {now}, the interface says {model}")
    return calls


def test_fuzz_prctl(c, record_property):
    record_property("seed", SEED)
    record_property("calls", CALLS)
    assert in_child(_fuzz_prctl, c, SEED, CALLS) == CALLS


def _mask_text(rng: random.Random, possible: list[int]) -> tuple[str, set[int] | None]:
    """A line to write and the mask it sets (None: EINVAL expected)."""
    top = max(possible)
    kind = rng.randrange(6)
    if kind == 0:
        return "\n", set()
    if kind == 1:
        return rng.choice(["abc", "2-", "3-2", "1,,x", "-1", "0-1:3/2junk", "0x1", "1-2-3"]) + "\n", None
    if kind == 2:
        return f"{top + rng.randrange(1, 100000)}\n", None
    cpus = sorted(rng.sample(possible, rng.randrange(1, len(possible) + 1)))
    if kind == 3:
        return f"{cpus[0]}-{cpus[-1]}\n", set(range(cpus[0], cpus[-1] + 1))
    return ",".join(map(str, cpus)) + "\n", set(cpus)


def test_fuzz_block_interf_writes(cpus, record_property):
    rng = random.Random(SEED)
    possible = cpulist(open("/sys/devices/system/cpu/possible").read())
    model: set[int] = set()
    record_property("seed", SEED)
    record_property("calls", CALLS // 4)
    for i in range(CALLS // 4):
        text, want = _mask_text(rng, possible)
        err = write(MASK, text)
        if want is None:
            if err != errno.EINVAL:
                fail(SEED, i, f"write {text!r}", f"gave {os.strerror(err) if err else 'success'}, not EINVAL")
        elif err:
            fail(SEED, i, f"write {text!r}", f"failed with {os.strerror(err)}")
        else:
            model = want
        now = set(cpulist(MASK.read_text()))
        if now != model:
            fail(SEED, i, f"write {text!r}", f"the file reads {sorted(now)}, the interface says {sorted(model)}")
