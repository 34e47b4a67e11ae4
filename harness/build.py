"""Stage 4 (build): compile the kernel out of tree with ccache, then install
the uapi headers for the guest tests and samples."""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import children
from .ccache import CcacheStats, Remote, ccache_env, probe_remote, read_stats
from .children import Group
from .errors import ENVIRONMENT_HINT, BuildError, EnvironmentFault, HarnessError, environment_fault
from .files import atomic_write
from .identity import KernelIdentity, vmlinux_identity
from .kconfig import ARCH
from .progress import Progress
from .proc import require_tool

IMAGE = Path("arch/x86/boot/bzImage")
HEADERS = Path("usr/include")  # headers_install's default INSTALL_HDR_PATH is $O/usr

_QUIET_LINE = re.compile(r"^\s+([A-Z][A-Z0-9_]*(?: \[M\])?)\s+(\S+)")
_ERROR_LINE = re.compile(
    r"(\berror:|\bError \d|undefined reference|multiple definition|\*\*\*|fatal error|ld: |Segmentation fault)"
)


@dataclass(frozen=True)
class KernelBuild:
    build_dir: Path
    image: Path
    headers: Path
    log: Path
    duration: float
    objects: int          # objects compiled (CC lines) in this build
    identity: KernelIdentity = KernelIdentity()  # of the vmlinux that was linked
    banner: str = ""      # its exact "Linux version ..." line
    ccache: CcacheStats | None = None  # None when make did not run
    remote: Remote | None = None       # the remote storage asked for, probed

    def properties(self) -> dict[str, str]:
        props = {"build_dir": str(self.build_dir)}
        if self.ccache is not None:
            props.update(self.ccache.properties())
        if self.remote is not None:
            props["ccache_remote"] = self.remote.describe()
        return props


VMLINUX = Path("vmlinux")
RELEASE_FILE = Path("include/config/kernel.release")


def built_identity(build_dir: Path) -> tuple[KernelIdentity, str]:
    """Identity and banner of the vmlinux in ``build_dir`` (the kernel the
    image is supposed to carry)."""
    try:
        release = (build_dir / RELEASE_FILE).read_text().strip()
        return vmlinux_identity(build_dir / VMLINUX, release)
    except (OSError, ValueError, IndexError) as exc:
        raise HarnessError(f"cannot read the identity of the kernel built in {build_dir}: {exc}",
                           hint="rebuild it: 'isolharness build'") from exc


def finished(build_dir: Path, log: Path, duration: float, objects: int,
             ccache: CcacheStats | None = None, remote: Remote | None = None) -> KernelBuild:
    identity, banner = built_identity(build_dir)
    return KernelBuild(build_dir, build_dir / IMAGE, build_dir / HEADERS, log, duration, objects, identity, banner,
                       ccache, remote)


def stats_log_of(log: Path) -> Path:
    """Where ccache logs the calls of the build that writes ``log``."""
    return log.with_name(f"{log.stem}-ccache.log")


def extract_errors(log_lines: list[str], limit: int = 40) -> str:
    """The compiler's and linker's error lines, with the two lines that
    follow each (gcc's source excerpt and caret), not the whole log."""
    picked: list[str] = []
    seen: set[int] = set()
    for i, line in enumerate(log_lines):
        if _ERROR_LINE.search(line):
            for j in range(i, min(i + 3, len(log_lines))):
                if j not in seen and (j == i or not _QUIET_LINE.match(log_lines[j])):
                    picked.append(log_lines[j])
                    seen.add(j)
    if not picked:
        picked = log_lines[-15:]
    if len(picked) > limit:
        picked = picked[:limit] + [f"... ({len(picked) - limit} more lines in the build log)"]
    return "\n".join(picked)


# The C compiler Kbuild is given: ccache, except where ccache cannot see an
# input. An assembler file that .incbin's a build product (piggy.S includes
# the compressed vmlinux, rmpiggy.S the real-mode blob, configs.c and
# system_certificates.S their payloads) hashes the same when only the payload
# changed, and in depend mode ccache never looks inside: it would hand back
# an object holding an earlier kernel. So: a source that names .incbin is
# compiled by gcc itself; other assembler sources go through ccache's
# preprocessor mode, whose own check refuses to cache a .incbin that arrives
# through #include or a macro; C sources keep depend mode (fast cold builds).
# The script lives in the cache, so its path (part of every Kbuild command
# line) is the same for every clone of the project.
COMPILER_NAME = "isolharness-cc"
COMPILER_SCRIPT = """#!/bin/sh
# Written by isolharness (harness/build.py): the CC it passes to Kbuild.
src=
for arg do
	case $arg in *.c|*.S|*.s) src=$arg ;; esac
done
case $src in
'') exec ccache gcc "$@" ;;
esac
if grep -qs 'incbin' "$src"; then
	exec gcc "$@"
fi
case $src in
*.S|*.s) unset CCACHE_DEPEND; CCACHE_NODEPEND=1; export CCACHE_NODEPEND ;;
esac
exec ccache gcc "$@"
"""


def compiler(cache: Path) -> Path:
    """The compiler script in the cache, (re)written when its text changed."""
    path = cache / "bin" / COMPILER_NAME
    if not path.is_file() or path.read_text() != COMPILER_SCRIPT:
        atomic_write(path, COMPILER_SCRIPT, 0o755)
    return path


def _make_cmd(srctree: Path, build_dir: Path, cache: Path, jobs: int, targets: list[str]) -> list[str]:
    return [
        "make", "-C", str(srctree), f"O={build_dir}", f"ARCH={ARCH}", f"-j{jobs}",
        f"CC={compiler(cache)}", *targets,
    ]


def run_make(srctree: Path, build_dir: Path, cache: Path, targets: list[str], log: Path,
             progress: Progress, jobs: int | None = None, remote: Remote | None = None) -> int:
    """Run make, stream its output into ``log`` and the progress line; return
    the number of objects compiled. Raise BuildError with the error lines."""
    require_tool("ccache", "ccache")
    jobs = jobs or os.cpu_count() or 1
    env = dict(os.environ, LC_ALL="C")   # gcc's and make's messages are read in English
    stats = stats_log_of(log)
    stats.unlink(missing_ok=True)
    env.update(ccache_env(cache, remote, stats))
    cmd = _make_cmd(srctree, build_dir, cache, jobs, targets)
    objects = 0
    tail: list[str] = []
    with log.open("a") as logf:
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        group = Group(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace")
        proc = group.proc
        try:
            assert proc.stdout is not None
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            last_dir = ""
            while True:
                if sel.select(timeout=1.0):
                    line = proc.stdout.readline()
                    if not line:
                        break
                    logf.write(line)
                    tail.append(line.rstrip("\n"))
                    if len(tail) > 4000:
                        del tail[:1000]
                    m = _QUIET_LINE.match(line)
                    if m:
                        if m.group(1) == "CC":
                            objects += 1
                        last_dir = os.path.dirname(m.group(2)) or last_dir
                progress.update(f"{objects} objects compiled, in {last_dir or '.'}")
            rc = proc.wait()
        finally:
            # Ctrl-C, an error of ours, or make done: nothing of its group stays.
            group.stop()
    if rc != 0:
        fault = environment_fault("\n".join(tail))
        if fault:
            raise EnvironmentFault(f"the kernel build stopped: {fault} (make {' '.join(targets)}, exit {rc})",
                               detail=extract_errors(tail), hint=ENVIRONMENT_HINT)
        raise BuildError(
            f"kernel build failed (make {' '.join(targets)}, exit {rc})",
            detail=extract_errors(tail),
            hint=f"full log: {log}",
        )
    return objects


STAMP = ".isolharness-build-stamp"


def _image_id(build_dir: Path) -> str:
    st = (build_dir / IMAGE).stat()
    return f"{st.st_mtime_ns}:{st.st_size}"


def full_stamp(stamp: str) -> str:
    """What a build stamp records: the caller's (tree commit and config) and
    the compiler script's digest, since a new rule for what ccache may serve
    makes a build of the same commit and config a different build."""
    return f"{stamp}:{hashlib.sha256(COMPILER_SCRIPT.encode()).hexdigest()[:12]}"


def built_commit(build_dir: Path) -> str | None:
    """The tree commit the image in ``build_dir`` was built from, as the
    stamp of its build recorded it; None when no complete build of this
    image is recorded (a build that failed, was interrupted, or a walk of a
    series that rebuilt it per patch)."""
    try:
        recorded = (build_dir / STAMP).read_text().split()
    except OSError:
        return None
    if len(recorded) != 2 or not (build_dir / IMAGE).is_file() or recorded[1] != _image_id(build_dir):
        return None
    return recorded[0].split(":", 1)[0]


def _newer_than(tree: Path, stamp_file: Path) -> bool:
    """Whether any file of the tree (outside .git) changed after the stamp:
    what make would find, for a fraction of its cost."""
    res = children.run(["find", str(tree), "-path", str(tree / ".git"), "-prune", "-o",
                          "-type", "f", "-newer", str(stamp_file), "-print", "-quit"], capture_output=True, text=True)
    return res.returncode != 0 or bool(res.stdout.strip())


def build_kernel(srctree: Path, build_dir: Path, cache: Path, log: Path, jobs: int | None = None,
                 stamp: str | None = None, trust_stamp: bool = False, remote: str = "") -> KernelBuild:
    """make bzImage headers_install. ``stamp`` names what is built (tree
    commit and config); when ``trust_stamp`` (the tree was not touched since)
    and the last successful build recorded the same stamp for the image that
    is still there, make is not run at all: walking Kbuild to find nothing to
    do costs a no-change run seconds."""
    if not (build_dir / ".config").exists():
        raise HarnessError(f"{build_dir} has no .config", hint="run 'isolharness config' first")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    stamp_file = build_dir / STAMP
    if stamp:
        stamp = full_stamp(stamp)
    if stamp and trust_stamp and (build_dir / IMAGE).is_file() and (build_dir / HEADERS).is_dir() \
            and stamp_file.is_file() and stamp_file.read_text().split() == [stamp, _image_id(build_dir)] \
            and not _newer_than(srctree, stamp_file):
        print("build: up to date (same tree commit and .config as the last build)", flush=True)
        log.write_text(f"up to date: {stamp}\n")
        return finished(build_dir, log, 0.0, 0)
    stamp_file.unlink(missing_ok=True)
    storage = probe_remote(remote)
    if storage is not None and storage.problems:
        print(f"build: remote ccache left out: {'; '.join(storage.problems)}", flush=True)
    start = time.monotonic()
    progress = Progress("build")
    progress.update(f"make bzImage headers_install in {build_dir}", force=True)
    # One make for both: a second invocation costs a no-change run seconds.
    objects = run_make(srctree, build_dir, cache, ["bzImage", "headers_install"], log, progress, jobs, storage)
    duration = time.monotonic() - start
    if stamp:
        stamp_file.write_text(f"{stamp} {_image_id(build_dir)}\n")
    stats = read_stats(stats_log_of(log))
    build = finished(build_dir, log, duration, objects, stats, storage)
    progress.done(f"done, {objects} objects compiled, {build.identity.describe()}")
    print(f"build: ccache: {stats.describe()}", flush=True)
    return build
