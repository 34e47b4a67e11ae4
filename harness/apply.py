"""Stage 2 (prepare, second half): a worktree of the source repository per
series combination, with the series applied by ``git am`` on a fresh branch.

Applied results are remembered under ``refs/isolharness/applied/<digest>``:
a re-run with unchanged patches checks out nothing and rewrites no file, so
the build stays incremental. Every prefix of the patch list is remembered
too (``refs/isolharness/prefix/<digest>``): a series whose first patches are
unchanged (a new revision, a mutant on top of the series) starts from the
longest prefix already applied, so only the files the differing patches
touch are rewritten, and only what depends on them is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import children
from . import git as g
from .cache import locked, tree_path
from .errors import ENVIRONMENT_HINT, EnvironmentFault, SeriesApplyError, environment_fault
from .series import Patch, Series, series_set_digest, series_set_key
from .source import SourceRepo


@dataclass(frozen=True)
class AppliedTree:
    path: Path               # worktree with the series applied
    base_commit: str
    head_commit: str
    series_names: tuple[str, ...]
    series_hash: str         # digest of base + series contents
    key: str                 # names the worktree and the build directory
    changed: bool            # False when the tree was already in this state


def _git_dir(tree: Path) -> Path:
    return Path(g.git(tree, "rev-parse", "--absolute-git-dir").strip())


def ensure_worktree(src: SourceRepo, cache: Path, key: str) -> Path:
    tree = tree_path(cache, key)
    if (tree / ".git").exists():
        if g.git_ok(tree, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"):
            return tree
        if g.git_ok(tree, "rev-parse", "--git-dir"):
            # HEAD names a commit the source repository no longer has (a
            # --ksrc tree whose history was rewritten): start from the base.
            g.git(tree, "update-ref", "--no-deref", "HEAD", src.base_commit)
            return tree
    g.git(src.repo, "worktree", "prune")
    if tree.exists():
        shutil.rmtree(tree)  # a worktree of ours that git no longer knows
    tree.parent.mkdir(parents=True, exist_ok=True)
    print(f"isolharness: creating worktree {tree}", flush=True)
    g.git(src.repo, "worktree", "add", "-f", "--detach", str(tree), src.base_commit)
    return tree


def _abort_leftover_am(tree: Path) -> None:
    if (_git_dir(tree) / "rebase-apply").exists():
        children.run(["git", "-C", str(tree), "am", "--abort"], capture_output=True)


def apply_series(src: SourceRepo, cache: Path, series: list[Series],
                 hold: contextlib.ExitStack | None = None) -> AppliedTree:
    """Apply under the tree's lock: another run may be building from it.
    With ``hold`` the lock stays held until that stack closes, so that the
    tree checked out is the tree configured, built and booted: a run of the
    same tree at another revision waits instead of checking its commit out
    underneath."""
    key = f"{src.key}-{series_set_key(series)}"
    if hold is not None:
        hold.enter_context(locked(cache, key))
        return _apply_locked(src, cache, series, key)
    with locked(cache, key):
        return _apply_locked(src, cache, series, key)


def _prefix_digests(base_commit: str, series: list[Series]) -> list[tuple[str, Series, Patch]]:
    """(digest of the base and every patch up to this one, series, patch), in order."""
    steps, h = [], base_commit
    for s in series:
        for patch in s.patches:
            h = hashlib.sha256(f"{h}\0{s.name}\0{patch.name}\0".encode() + patch.path.read_bytes()).hexdigest()
            steps.append((h, s, patch))
    return steps


def _apply_locked(src: SourceRepo, cache: Path, series: list[Series], key: str) -> AppliedTree:
    tree = ensure_worktree(src, cache, key)
    _abort_leftover_am(tree)
    digest = hashlib.sha256((src.base_commit + series_set_digest(series)).encode()).hexdigest()
    ref = f"refs/isolharness/applied/{digest}"
    names = tuple(s.name for s in series)

    head = g.rev_parse(tree, "HEAD")
    if g.git_ok(tree, "rev-parse", "--verify", "--quiet", ref):
        target = g.rev_parse(tree, ref)
        changed = head != target or g.is_dirty(tree)
        if changed:
            g.git(tree, "checkout", "-q", "-f", "--detach", target)
        return AppliedTree(tree, src.base_commit, target, names, digest, key, changed)

    branch = f"isolharness/{key}"
    steps = _prefix_digests(src.base_commit, series)
    start, done = src.base_commit, 0
    for i, (prefix, _, _) in enumerate(steps, 1):
        prefix_ref = f"refs/isolharness/prefix/{prefix}"
        if not g.git_ok(tree, "rev-parse", "--verify", "--quiet", prefix_ref):
            break
        start, done = g.rev_parse(tree, prefix_ref), i
    g.git(tree, "checkout", "-q", "-f", "-B", branch, start)
    for prefix, s, patch in steps[done:]:
        res = children.run(
            ["git", "-C", str(tree), "am", "-q", "--no-3way", str(patch.path)],
            capture_output=True,
            text=True,
            env=g.identity_env(committer_only=True),
        )
        if res.returncode != 0:
            children.run(["git", "-C", str(tree), "am", "--abort"], capture_output=True)
            fault = environment_fault(res.stdout + res.stderr)
            if fault:
                raise EnvironmentFault(f"applying {s.name}/{patch.name} stopped: {fault}",
                                   detail=(res.stdout + res.stderr).strip()[-3000:], hint=ENVIRONMENT_HINT)
            raise SeriesApplyError(
                f"patch {s.name}/{patch.name} does not apply to {src.description}",
                detail=(res.stdout + res.stderr).strip()[-3000:],
                hint="rebase the patch on the base tree (the base tree is unchanged)",
            )
        g.git(tree, "update-ref", f"refs/isolharness/prefix/{prefix}", "HEAD")
    target = g.rev_parse(tree, "HEAD")
    g.git(tree, "update-ref", ref, target)
    return AppliedTree(tree, src.base_commit, target, names, digest, key, True)
