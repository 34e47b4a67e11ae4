"""Thin wrapper over the git command line."""

from __future__ import annotations

import os
from pathlib import Path

from . import children
from .proc import run

# Commits the harness makes itself are stamped with the project's identity so
# they are reproducible and never depend on the user's git configuration.
IDENTITY = {
    "GIT_AUTHOR_NAME": "isolharness",
    "GIT_AUTHOR_EMAIL": "isolharness@localhost",
    "GIT_COMMITTER_NAME": "isolharness",
    "GIT_COMMITTER_EMAIL": "isolharness@localhost",
    "GIT_AUTHOR_DATE": "2024-11-17T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2024-11-17T00:00:00+0000",
}

# Every git call whose output the harness reads runs in the C locale: git
# translates its messages (bisect's "is the first bad commit" among them).
C_LOCALE = {"LC_ALL": "C", "LANGUAGE": ""}


# Variables with which git points its children at a repository (git bisect
# run, hooks): the harness always names its repositories with -C.
REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_PREFIX", "GIT_NAMESPACE")


def scrub_repo_env() -> None:
    """Forget the repository git may have exported to this process."""
    for name in REPO_ENV:
        os.environ.pop(name, None)


def git(repo: Path, *args: str, what: str | None = None, hint: str = "") -> str:
    return run(["git", "-C", str(repo), *args], env={**IDENTITY, **C_LOCALE}, what=what or f"git {args[0]}",
               hint=hint)


def git_ok(repo: Path, *args: str) -> bool:
    """True when the git command succeeds (for queries such as rev-parse --verify)."""
    res = children.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         env={**os.environ, **C_LOCALE})
    return res.returncode == 0


def rev_parse(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()


def is_dirty(repo: Path) -> bool:
    """Tracked files modified or staged (untracked files do not count)."""
    return bool(git(repo, "status", "--porcelain", "--untracked-files=no").strip())


def run_git_plain(args: list[str]) -> str:
    """git without -C, for clone."""
    return run(["git", *args], env={**IDENTITY, **C_LOCALE}, what=f"git {args[0]}")


def identity_env(committer_only: bool = False) -> dict[str, str]:
    """Environment for git commands that create commits; ``committer_only``
    keeps a patch's own author (git am)."""
    env = dict(os.environ)
    env.update({k: v for k, v in IDENTITY.items() if not committer_only or k.startswith("GIT_COMMITTER")})
    env.update(C_LOCALE)
    return env
