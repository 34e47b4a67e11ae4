"""The cache directory outside the repository, and locks on its parts.

Layout::

    $CACHE/src/<sha256>/               git repository made from a source tarball
    $CACHE/src/git-<roots>/            clone of --ksrc trees of one history
    $CACHE/work/<key>/src/             worktree a series set is applied in
    $CACHE/work/<key>/build/<config>/  O= build directory of that worktree
    $CACHE/ccache/                     compiler cache
    $CACHE/bin/isolharness-cc     the CC given to Kbuild (harness/build.py)
    $CACHE/locks/                 flock files
    $CACHE/accel.json             result of the accelerator probe
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import ENVIRONMENT_ERRNOS, EnvironmentFault, HarnessError

ENV_VAR = "ISOLHARNESS_CACHE"

# A cold run needs an unpacked tree (1.7 GB), a worktree per series set and
# its build directory (about 1 GB with the lean config), plus ccache.
MIN_FREE_BYTES = 6 * 1024**3


# Every worktree and its build directories stand in the same relative
# position: from any build directory the tree is ../../src. ccache rewrites
# the paths below its base directory (the cache) relative to the build
# directory, so the compiler sees the same paths for every tree, and an
# object compiled for one tree is a hit for every other tree (and for every
# other machine's cache) with the same source and configuration.
WORK = "work"
TREE = "src"
BUILDS = "build"
# Where earlier versions kept worktrees and build directories (relative
# paths that named the tree's key, so trees shared no ccache hits), and
# their --ksrc clones, named after the tree's local path.
OLD_LAYOUT = {
    "trees": re.compile(r"^(tar|ksrc)-[0-9a-f]{12}-"),
    "build": re.compile(r"^(tar|ksrc)-[0-9a-f]{12}-"),
    "src": re.compile(r"^ksrc-[0-9a-f]{12}$"),
}


def tree_path(cache: Path, key: str) -> Path:
    return cache / WORK / key / TREE


def build_path(cache: Path, key: str, variant: str) -> Path:
    return cache / WORK / key / BUILDS / variant


def retire_old_layout(cache: Path) -> None:
    """Remove worktrees and build directories of the earlier layout. Only
    entries named as the harness named them go (a cache pointed at a
    directory that also holds a user's own build/ loses nothing of it); git
    forgets the worktrees at its next prune."""
    for name, harness_made in OLD_LAYOUT.items():
        old = cache / name
        if not old.is_dir():
            continue
        for entry in old.iterdir():
            if entry.is_dir() and not entry.is_symlink() and harness_made.match(entry.name):
                print(f"isolharness: removing {entry} (cache layout of an earlier version)", flush=True)
                shutil.rmtree(entry, ignore_errors=True)
        with contextlib.suppress(OSError):
            old.rmdir()  # only when empty


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the cache location: flag, then $ISOLHARNESS_CACHE, then XDG."""
    if override:
        path = Path(override)
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(xdg) / "isolharness"
    path = path.expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFault(
            f"cannot create cache directory {path}: {exc.strerror}",
            hint=f"set {ENV_VAR} or pass --cache to a writable location",
        ) from exc
    return path


def check_free_space(path: Path, need: int = MIN_FREE_BYTES) -> None:
    free = shutil.disk_usage(path).free
    if free < need:
        raise EnvironmentFault(
            f"only {free / 1024**3:.1f} GiB free in {path}, a run needs about {need / 1024**3:.0f} GiB",
            hint=f"free space there, or point {ENV_VAR} / --cache at a larger file system",
        )


def no_space_hint(exc: OSError, path: Path) -> HarnessError:
    """Turn ENOSPC (and friends) into an actionable error."""
    if exc.errno in ENVIRONMENT_ERRNOS:
        return EnvironmentFault(
            f"{ENVIRONMENT_ERRNOS[exc.errno]} ({path})",
            hint=f"free space, or point {ENV_VAR} / --cache at a larger file system; the cache stays usable",
        )
    return HarnessError(f"{path}: {exc.strerror}")


_held: dict[str, int] = {}


@contextlib.contextmanager
def locked(cache: Path, name: str, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``$CACHE/locks/<name>``.

    A second run waits (and says so) instead of corrupting shared state. flock
    is released by the kernel when the process dies, so an interrupted run never
    leaves a stale lock behind. Re-entrant within one process: a stage that
    takes a lock its caller holds goes ahead.
    """
    key = f"{cache}/{name}"
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    lock_dir = cache / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another run"
            print(f"isolharness: waiting for {name} lock held by pid {holder}", file=sys.stderr, flush=True)
            start = time.monotonic()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if timeout is not None and time.monotonic() - start > timeout:
                        raise HarnessError(
                            f"timed out waiting for the {name} lock (held by pid {holder})",
                            hint="wait for the other isolharness run to finish",
                        ) from None
                    time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
    finally:
        os.close(fd)
