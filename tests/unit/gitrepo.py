"""Scratch git repositories for the unit tests that need real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], env=ENV, check=True,
                          capture_output=True, text=True).stdout


def make_repo(path: Path, subjects: list[str], tag: str | None = None) -> Path:
    """A repository with a base commit (tagged `tag`) and one commit per
    subject, each appending a line to f.c."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "f.c").write_text("int a;\n")
    git(path, "add", "f.c")
    git(path, "commit", "-q", "-m", "base")
    if tag:
        git(path, "tag", tag)
    for i, subject in enumerate(subjects, 1):
        (path / "f.c").write_text((path / "f.c").read_text() + f"int x{i};\n")
        git(path, "commit", "-q", "-am", subject)
    return path
