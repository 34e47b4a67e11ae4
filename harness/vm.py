"""Stage 5 (boot): run a command in a virtme-ng guest under a watchdog.

The guest is started with ``vng --run IMAGE --exec CMD``. The console (kernel
log) is captured from vng's stderr (``--verbose``), the command's output from
its stdout; both are saved in full. A guest that outlives its deadline is
killed with its whole process group, so no qemu is left behind.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from .children import Group
from .errors import EnvironmentFault, HarnessError, as_harness_error
from .files import atomic_write
from .identity import IDENTITY_COMMAND, KernelIdentity, parse_identity_line
from .profile import Profile
from .progress import Progress

# Printed by the guest command before anything else: proof that the kernel
# booted and virtme-ng reached the command.
START_MARKER = "ISOLHARNESS-GUEST-START"

# vng exits with 255 when the guest never returned a status (panic, console
# fallback) -- the guest command's own status otherwise.
VNG_NO_STATUS = 255

# The 9p mount tag virtme-ng gives the host's root; see vng_argv().
ROOT_ARG = "root=/dev/root"


@dataclass(frozen=True)
class VmSpec:
    image: Path
    profile: Profile
    accel: str                      # "kvm" or "tcg"
    command: str                    # shell command run inside the guest
    rwdirs: tuple[Path, ...] = ()
    cwd: Path | None = None


@dataclass(frozen=True)
class VmResult:
    accel: str
    returncode: int | None          # None when the watchdog killed the guest
    timed_out: bool
    reached_command: bool
    duration: float
    console: Path
    output: Path
    identity: KernelIdentity | None = None  # what the running kernel said of itself
    stalled: bool = False           # killed for printing nothing for ``stall`` seconds


# virtme-ng passes the --exec command base64-encoded on the kernel command
# line, which x86 cuts at COMMAND_LINE_SIZE (2048): a long -k or results path
# then cut the init path and the guest panicked. The command goes into a
# script beside the console log (the guest sees the host's file system), and
# --exec only runs it.
COMMAND_LINE_SIZE = 2048


_INIT_FAILED = re.compile(r"Requested init (\S+) failed")


def vng_init() -> str:
    """The init virtme-ng gives the guest (init=...virtme/guest/bin/virtme-ng-init)."""
    import importlib.util

    spec = importlib.util.find_spec("virtme")
    where = list(spec.submodule_search_locations or []) if spec else []
    return f"{where[0]}/guest/bin/virtme-ng-init" if where else ""


def cut_command_line(console: str, init: str | None = None) -> bool:
    """Whether the kernel ran a cut-off init: the command line filled
    COMMAND_LINE_SIZE and lost its end (printk cuts the "Kernel command
    line" line at 1 KiB, so only the init it tried tells)."""
    init = vng_init() if init is None else init
    m = _INIT_FAILED.search(console)
    return bool(init and m and m.group(1) != init and init.startswith(m.group(1)))


def guest_script(spec: VmSpec) -> str:
    return f"echo {START_MARKER}\n{IDENTITY_COMMAND}\n{spec.command}\n"


def vng_argv(spec: VmSpec, vng: str = "vng", script: Path | None = None) -> list[str]:
    argv = [
        vng, "--run", str(spec.image),
        "--verbose",
        "--cpus", str(spec.profile.cpus),
        "--memory", spec.profile.memory,
        "--disable-monitor",
        # No Rust virtiofsd on Debian 12: skip the attempt, 9p works.
        "--force-9p",
    ]
    if spec.accel == "tcg":
        # Multi-threaded TCG makes SMP 6.12 guests oops while static keys are
        # patched; single-threaded TCG boots them cleanly.
        argv += ["--disable-kvm", "--qemu-opts=-accel tcg,thread=single"]
    elif spec.accel != "kvm":
        raise HarnessError(f"unknown accelerator {spec.accel!r}")
    # With --verbose vng already asks for loglevel=7, so WARN splats reach
    # the console. Our arguments come after vng's own (but before its init=),
    # so they win where both set the same parameter.
    #
    # vng gives rootfstype=9p but no root=, and the kernel then mounts the
    # 9p export (tagged /dev/root) only through its block-device path, which
    # needs CONFIG_BLOCK. Naming the tag as root= takes the kernel's path for
    # filesystems without a device (mount_nodev_root, Linux 6.4 and later),
    # so the lean config needs no block layer. A profile's own root= wins.
    argv += ["--append", ROOT_ARG]
    if spec.profile.cmdline:
        argv += ["--append", spec.profile.cmdline]
    for d in spec.rwdirs:
        argv += ["--rwdir", str(d)]
    if spec.cwd:
        argv += ["--cwd", str(spec.cwd)]
    if script is not None:
        argv += ["--exec", f"sh {shlex.quote(str(script))}"]
    else:
        argv += ["--exec", guest_script(spec).strip().replace("\n", "; ")]
    return argv


def _vng_path() -> str:
    import shutil
    import sys

    here = Path(sys.executable).parent / "vng"
    if here.exists():
        return str(here)
    found = shutil.which("vng")
    if not found:
        raise EnvironmentFault("virtme-ng (vng) is not installed", hint="run 'make venv' or pip install virtme-ng")
    return found


def _pump(src: IO[bytes] | None, dst: BinaryIO, failed: list[OSError]) -> threading.Thread:
    """Copy a pipe into a file as it comes, so nothing is lost on a kill. A
    write that fails (no space left) is recorded in ``failed``, and the pipe
    is still drained, so that QEMU never stalls on a full pipe and looks
    hung."""

    def copy() -> None:
        assert src is not None
        for chunk in iter(lambda: src.read1(65536), b""):
            if failed:
                continue
            try:
                dst.write(chunk)
                dst.flush()
            except OSError as exc:
                failed.append(exc)

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def run_vm(spec: VmSpec, console: Path, output: Path, timeout: float, stage: str = "boot",
           quiet: bool = False, stall: float | None = None) -> VmResult:
    """Boot and run ``spec``; the guest is killed after ``timeout`` seconds,
    or (with ``stall``) once neither its console nor its output has grown for
    that long before the command started."""
    if not spec.image.is_file():
        raise HarnessError(f"kernel image {spec.image} does not exist", hint="run 'isolharness build' first")
    console.parent.mkdir(parents=True, exist_ok=True)
    script = console.parent / f"{stage}-command.sh"
    atomic_write(script, guest_script(spec), 0o755)
    argv = vng_argv(spec, _vng_path(), script)
    progress = Progress(stage)
    start = time.monotonic()
    with console.open("wb") as con, output.open("wb") as out:
        con.write(("# " + shlex.join(argv) + "\n").encode())
        con.flush()
        env = dict(os.environ)
        # vng runs virtme-run from PATH: make it the one beside vng.
        env["PATH"] = f"{Path(argv[0]).parent}:{env.get('PATH', '')}"
        # Pipes, not files: QEMU reopens /proc/self/fd/{1,2} for several
        # chardevs, and on a regular file each would truncate and overwrite
        # the others' output.
        group = Group(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc = group.proc
        failed: list[OSError] = []
        pumps = [_pump(proc.stdout, out, failed), _pump(proc.stderr, con, failed)]
        timed_out = stalled = started = False
        printed, last_growth = 0, start
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now - start > timeout:
                    timed_out = True
                    break
                if stall is not None and not started:
                    size = con.tell() + out.tell()
                    if size != printed:
                        printed, last_growth = size, now
                    elif now - last_growth > stall:
                        # Silence once the command runs is the command's.
                        started = START_MARKER.encode() in output.read_bytes()
                        if not started:
                            timed_out = stalled = True
                            break
                if not quiet:
                    progress.update(f"guest running ({spec.accel}, {spec.profile.cpus} vCPUs)")
                time.sleep(0.5)
        finally:
            # vng may leave qemu behind if it died first; the group goes too.
            group.stop(grace=5.0 if timed_out else 2.0)
        for pump in pumps:
            pump.join(timeout=10)
    if failed:
        # The guest's output was lost: the environment's fault (ENOSPC is a
        # MISS), not the kernel's.
        raise as_harness_error(failed[0])
    duration = time.monotonic() - start
    text = output.read_bytes()
    reached = START_MARKER.encode() in text
    identity = parse_identity_line(text.decode(errors="replace")) if reached else None
    rc = None if timed_out else proc.returncode
    if not quiet:
        state = "killed by the watchdog" if timed_out else f"exit {rc}"
        progress.done(f"guest {state}")
    return VmResult(spec.accel, rc, timed_out, reached, duration, console, output, identity, stalled)
