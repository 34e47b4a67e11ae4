"""`isolharness doctor`: what is missing or broken on this host, with the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .cache import MIN_FREE_BYTES, cache_dir
from .source import DEFAULT_PACKAGE, DEFAULT_TARBALL

# (command, Debian package)
TOOLS = [
    ("gcc", "build-essential"), ("make", "build-essential"), ("flex", "flex"), ("bison", "bison"),
    ("bc", "bc"), ("perl", "perl"), ("ccache", "ccache"), ("git", "git"), ("xz", "xz-utils"),
    ("cpio", "cpio"), ("qemu-system-x86_64", "qemu-system-x86"), ("udevadm", "udev"),
]
APT_PACKAGES = sorted({pkg for _, pkg in TOOLS}
                      | {"libelf-dev", "libssl-dev", "pahole", "python3-venv", "rsync", "kmod", "procps", DEFAULT_PACKAGE,
                         # the SSH target's tests run an OpenSSH server on the loopback address
                         "openssh-server", "openssh-client",
                         # the remote ccache test runs a Redis server on the loopback address
                         "redis-server",
                         # the bisect test runs git in a German locale it compiles (localedef)
                         "locales"})


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    info: str
    fix: str = ""
    fatal: bool = True   # False: a warning, the run can proceed


def check_tools() -> list[Check]:
    out = []
    for cmd, pkg in TOOLS:
        path = shutil.which(cmd)
        out.append(Check(cmd, path is not None, path or "not found", f"apt-get install {pkg}"))
    return out


def check_libelf() -> Check:
    ok = Path("/usr/include/libelf.h").exists() or Path("/usr/include/gelf.h").exists()
    return Check("libelf headers", ok, "/usr/include/libelf.h" if ok else "missing (objtool needs them)",
                 "apt-get install libelf-dev")


def check_udev() -> Check:
    running = Path("/run/udev/control").exists()
    return Check("udev", shutil.which("udevadm") is not None,
                 "installed" + (", running" if running else ""),
                 "apt-get install udev (without it vng returns 255 whatever the guest command did)")


def check_kvm(cache: str | None = None) -> Check:
    if not os.path.exists("/dev/kvm"):
        return Check("kvm", False, "/dev/kvm absent: guests run under TCG (slower)", "load kvm_intel/kvm_amd, or ignore",
                     fatal=False)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Check("kvm", False, "/dev/kvm not accessible: TCG will be used", "add yourself to group kvm",
                     fatal=False)
    import json

    from .accel import host_key

    try:
        record = json.loads((cache_dir(cache) / "accel.json").read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("key") == host_key():
        usable = record.get("accel") == "kvm"
        return Check("kvm", usable, f"last probe boot: {record.get('reason')}",
                     "nothing to do: guests fall back to single-threaded TCG (slower)", fatal=False)
    return Check("kvm", True, "/dev/kvm accessible; a probe boot at the next run decides whether guests use it")


def check_vng() -> Check:
    import sys

    here = Path(sys.executable).parent / "vng"
    path = str(here) if here.exists() else shutil.which("vng")
    if not path:
        return Check("virtme-ng", False, "vng not found", "make venv (or pip install virtme-ng)")
    ver = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    return Check("virtme-ng", True, f"{path} ({ver})")


def check_source() -> Check:
    return Check("kernel source", DEFAULT_TARBALL.is_file(), str(DEFAULT_TARBALL),
                 f"apt-get install {DEFAULT_PACKAGE} (or pass --ksrc PATH)", fatal=False)


def check_disk(cache: str | None) -> Check:
    path = cache_dir(cache)
    free = shutil.disk_usage(path).free
    return Check("disk space", free >= MIN_FREE_BYTES, f"{free / 1024**3:.1f} GiB free in {path}",
                 f"free at least {MIN_FREE_BYTES / 1024**3:.0f} GiB or set ISOLHARNESS_CACHE elsewhere")


def check_ccache_remote(flag: str | None = None) -> Check:
    from .ccache import REMOTE_ENV, probe_remote, remote_setting
    from .errors import HarnessError

    try:
        remote = probe_remote(remote_setting(flag))
    except HarnessError as exc:
        return Check("ccache remote", False, exc.message, exc.hint)
    if remote is None:
        return Check("ccache remote", True, f"none (set {REMOTE_ENV} to share builds with other machines)")
    return Check("ccache remote", not remote.problems, remote.describe(),
                 "start the storage or fix the URL; builds leave an unreachable one out", fatal=False)


def run_checks(cache: str | None = None, remote: str | None = None) -> list[Check]:
    return [*check_tools(), check_libelf(), check_udev(), check_kvm(cache), check_vng(), check_source(),
            check_disk(cache), check_ccache_remote(remote)]


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        mark = "ok " if c.ok else ("!! " if c.fatal else "-- ")
        lines.append(f"{mark} {c.name:<20} {c.info}")
        if not c.ok and c.fix:
            lines.append(f"    fix: {c.fix}")
    bad = [c for c in checks if not c.ok and c.fatal]
    lines.append("")
    lines.append("all required tools present" if not bad else f"{len(bad)} problem(s); fix them and run doctor again")
    return "\n".join(lines)


def missing_packages() -> list[str]:
    """Debian packages of APT_PACKAGES that dpkg does not list as installed."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *APT_PACKAGES],
                         capture_output=True, text=True)
    installed = {line.split()[0] for line in res.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in APT_PACKAGES if p not in installed]


if __name__ == "__main__":
    # Used by the Makefile before any virtual environment exists (stdlib only).
    import sys

    if sys.argv[1:] == ["--missing-packages"]:
        print(" ".join(missing_packages()))
