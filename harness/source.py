"""Stage 1 (prepare): turn a kernel source into a git repository in the cache.

Two kinds of source:

* the default: a tarball such as Debian's ``/usr/src/linux-source-6.12.tar.xz``,
  unpacked once, keyed by its sha256, committed as the first commit of a new
  repository;
* ``--ksrc PATH``: the user's own kernel git tree, cloned with ``--shared``
  into the cache so its working copy, index and branches are never touched;
  every local tree of one history (the same root commits) shares one clone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import children
from . import git as g
from .cache import locked
from .errors import ENVIRONMENT_HINT, EnvironmentFault, HarnessError, environment_fault
from .files import atomic_write

DEFAULT_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
DEFAULT_PACKAGE = "linux-source-6.12"
BASE_BRANCH = "base"
COMPLETE_MARK = ".isolharness-complete"


@dataclass(frozen=True)
class SourceRepo:
    """A git repository in the cache holding the base kernel."""

    repo: Path          # the repository (in the cache)
    base_commit: str    # commit the series are applied on
    description: str    # human-readable origin, e.g. "linux-source-6.12.tar.xz 6.12.117"
    key: str            # short identifier used to name worktrees and build dirs


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def kernel_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from a kernel Makefile."""
    fields: dict[str, str] = {}
    with (tree / "Makefile").open(errors="replace") as f:
        for line in f:
            m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
            if m:
                fields[m.group(1)] = m.group(2)
            if len(fields) == 4:
                break
    ver = f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}"
    if fields.get("SUBLEVEL", "0") != "0":
        ver += f".{fields['SUBLEVEL']}"
    return ver + fields.get("EXTRAVERSION", "")


def looks_like_kernel(tree: Path) -> bool:
    return all((tree / p).exists() for p in ("Makefile", "Kconfig", "kernel/sched", "scripts/kconfig"))


def check_tarball(tarball: Path) -> None:
    if not tarball.is_file():
        hint = (
            f"install it with: apt-get install {DEFAULT_PACKAGE}"
            if tarball == DEFAULT_TARBALL
            else "pass an existing tarball, or --ksrc PATH for a kernel git tree"
        )
        raise HarnessError(f"kernel source tarball {tarball} does not exist", hint=hint)


def prepare_tarball(cache: Path, tarball: Path = DEFAULT_TARBALL) -> SourceRepo:
    check_tarball(tarball)
    digest = sha256_file(tarball)
    repo = cache / "src" / digest
    key = f"tar-{digest[:12]}"
    with locked(cache, f"src-{digest[:16]}"):
        if not (repo / COMPLETE_MARK).exists():
            _unpack_and_commit(tarball, repo)
        base = g.rev_parse(repo, BASE_BRANCH)
        version = kernel_version(repo)
    return SourceRepo(repo=repo, base_commit=base, description=f"{tarball.name} {version}", key=key)


def _unpack_and_commit(tarball: Path, repo: Path) -> None:
    """Unpack into a temporary directory and rename it into place at the end,
    so an interrupted run leaves nothing half-made under the final name."""
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = repo.with_name(repo.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)  # left behind by an interrupted run
    if repo.exists():
        shutil.rmtree(repo)  # exists but never completed
    tmp.mkdir()
    print(f"isolharness: unpacking {tarball} into the cache (once per tarball)", flush=True)
    res = children.run(
        ["tar", "-xf", str(tarball), "-C", str(tmp), "--strip-components=1"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        fault = environment_fault(res.stderr)
        if fault:
            raise EnvironmentFault(f"cannot unpack {tarball} into {tmp.parent}: {fault}", hint=ENVIRONMENT_HINT,
                                   detail=res.stderr.strip()[-2000:])
        raise HarnessError(
            f"cannot unpack {tarball}: the tarball is corrupt or truncated",
            hint=f"reinstall it: apt-get install --reinstall {DEFAULT_PACKAGE}",
            detail=res.stderr.strip()[-2000:],
        )
    if not looks_like_kernel(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        raise HarnessError(f"{tarball} does not contain a kernel source tree")
    print("isolharness: committing the pristine tree as the base commit", flush=True)
    try:
        g.git(tmp, "init", "-q", "-b", BASE_BRANCH)
        g.git(tmp, "config", "gc.auto", "0")
        # Debian's top-level .gitignore ignores everything but debian/: force-add.
        g.git(tmp, "add", "-A", "-f")
        g.git(tmp, "commit", "-q", "--no-verify", "-m", f"Linux {kernel_version(tmp)} from {tarball.name}")
    except HarnessError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".git" / "info").mkdir(exist_ok=True)
    (tmp / COMPLETE_MARK).write_text(str(tarball) + "\n")
    # Keep the mark out of `git status`.
    with (tmp / ".git" / "info" / "exclude").open("a") as f:
        f.write(f"/{COMPLETE_MARK}\n")
    os.rename(tmp, repo)


def check_ksrc(ksrc: Path, rev: str = "HEAD") -> tuple[Path, str]:
    """The top of a --ksrc tree that the harness can test, and the commit of
    ``rev``; a clear error for anything else."""
    ksrc = ksrc.expanduser().resolve()
    if not ksrc.is_dir():
        raise HarnessError(f"--ksrc {ksrc} is not a directory")
    if not g.git_ok(ksrc, "rev-parse", "--git-dir"):
        raise HarnessError(
            f"--ksrc {ksrc} is not a git repository",
            hint="pass a kernel git tree, or omit --ksrc to use the linux-source-6.12 tarball",
        )
    top = Path(g.git(ksrc, "rev-parse", "--show-toplevel").strip())
    if not looks_like_kernel(top):
        raise HarnessError(
            f"--ksrc {top} is not a kernel source tree (no Makefile, Kconfig, kernel/sched, scripts/kconfig)",
            hint="pass the top directory of a Linux git tree",
        )
    if g.is_dirty(top):
        raise HarnessError(
            f"--ksrc {top} has uncommitted changes; the harness tests commits, not the working copy",
            hint="commit or stash them (git stash), then run again",
        )
    try:
        commit = g.rev_parse(top, rev)
    except HarnessError:
        raise HarnessError(f"revision '{rev}' does not exist in {top}") from None
    return top, commit


def _drop_broken_refs(clone: Path) -> None:
    """Delete the clone's refs that point at objects it cannot reach."""
    for line in g.git(clone, "for-each-ref", "--format=%(objectname) %(refname)").splitlines():
        sha, _, ref = line.partition(" ")
        if sha and not g.git_ok(clone, "cat-file", "-e", f"{sha}^{{commit}}"):
            g.git(clone, "update-ref", "-d", ref)


def history_key(cache: Path, top: Path, commit: str) -> str:
    """The name of a --ksrc tree's clone, worktrees and build directories:
    a digest of the root commits of its history, so every local clone of
    one project (on this machine or another) gets the same names. Walking a
    long history to its roots takes seconds, so the roots found for a path
    are remembered (and checked to still be there)."""
    memo = cache / "src" / "ksrc-roots.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    roots = known.get(str(top))
    if not (isinstance(roots, list) and roots and all(g.git_ok(top, "cat-file", "-e", f"{r}^{{commit}}")
                                                        for r in roots)):
        roots = sorted(g.git(top, "rev-list", "--max-parents=0", commit).split())
        known[str(top)] = roots
        atomic_write(memo, json.dumps(known, indent=1, sort_keys=True) + "\n")
    return "git-" + hashlib.sha256(" ".join(roots).encode()).hexdigest()[:12]


def _objects_dir(top: Path) -> Path:
    return Path(g.git(top, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()) / "objects"


def _borrow_objects(clone: Path, top: Path) -> None:
    """Make ``top``'s objects reachable from the clone (alternates), and
    forget alternates whose repository is gone: several local trees of one
    history share the clone, and none of them is ever written to."""
    alternates = clone / ".git" / "objects" / "info" / "alternates"
    try:
        lines = [ln for ln in alternates.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        lines = []
    keep = [ln for ln in lines if Path(ln).is_dir()]
    mine = str(_objects_dir(top))
    if mine not in keep:
        keep.append(mine)
    if keep != lines:
        atomic_write(alternates, "".join(f"{ln}\n" for ln in keep))


def prepare_ksrc(cache: Path, ksrc: Path, rev: str = "HEAD") -> SourceRepo:
    top, commit = check_ksrc(ksrc, rev)
    key = history_key(cache, top, commit)
    clone = cache / "src" / key
    with locked(cache, key):
        if not (clone / COMPLETE_MARK).exists():
            if clone.exists():
                shutil.rmtree(clone)
            tmp = clone.with_name(clone.name + ".partial")
            if tmp.exists():
                shutil.rmtree(tmp)
            clone.parent.mkdir(parents=True, exist_ok=True)
            # --shared borrows the user's objects through alternates: no copy,
            # and nothing is written into the user's repository.
            g.run_git_plain(["clone", "-q", "--shared", "--no-checkout", str(top), str(tmp)])
            g.git(tmp, "config", "gc.auto", "0")
            (tmp / COMPLETE_MARK).write_text(str(top) + "\n")
            os.rename(tmp, clone)
        _borrow_objects(clone, top)
        # Bring in commits made since the clone; objects come via alternates.
        # Refs whose objects no borrowed repository has any more (a history
        # rewritten and pruned) would stop the fetch: they go.
        _drop_broken_refs(clone)
        g.git(clone, "fetch", "-q", "--no-tags", str(top), f"+{commit}:refs/heads/{BASE_BRANCH}-{commit[:12]}")
        g.git(clone, "update-ref", f"refs/heads/{BASE_BRANCH}", commit)
    version = kernel_version(top)
    return SourceRepo(repo=clone, base_commit=commit, description=f"{top} {commit[:12]} ({version})", key=key)
