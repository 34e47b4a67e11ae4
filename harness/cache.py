"""The cache directory outside the repository, and locks on its parts.

Layout::

    $CACHE/src/<sha256>/          git repository made from a source tarball
    $CACHE/trees/<key>/           worktree (or clone) a series is applied in
    $CACHE/build/<key>/<config>/  O= build directory
    $CACHE/ccache/                compiler cache
    $CACHE/bin/isolharness-cc     the CC given to Kbuild (harness/build.py)
    $CACHE/locks/                 flock files
    $CACHE/accel.json             result of the accelerator probe
"""

from __future__ import annotations

import contextlib
import fcntl
import os
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
