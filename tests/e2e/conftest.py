"""End-to-end tests: real kernel builds and real QEMU boots through the CLI.

They share the harness cache (``$ISOLHARNESS_CACHE`` or ~/.cache/isolharness)
with ``make check-isol``, so after the first run only changes rebuild.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from junitparser import JUnitXml

PROJECT = Path(__file__).resolve().parents[2]
ISOLHARNESS = Path(sys.executable).parent / "isolharness"


@dataclass
class Run:
    rc: int
    output: str
    results: Path

    @property
    def junit(self) -> JUnitXml:
        return JUnitXml.fromfile(str(self.results / "junit.xml"))

    def cases(self) -> dict[str, object]:
        out = {}
        for suite in self.junit:
            for case in suite:
                out[f"{suite.name}::{case.name}"] = case
        return out

    def properties(self) -> dict[str, str]:
        for suite in self.junit:
            if suite.name == "isolharness.stages":
                return {p.name: p.value for p in suite.properties()}
        return {}


def run_cli(args: list[str], results: Path | None, timeout: float = 3600, **kw) -> Run:
    cmd = [str(ISOLHARNESS), args[0]]
    if results is not None:
        cmd += ["--results", str(results)]  # before any `-- CMD` of exec
    cmd += args[1:]
    proc = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, timeout=timeout, **kw)
    output = proc.stdout + proc.stderr
    sys.stdout.write(f"$ {' '.join(cmd)}\n{output}\n")
    return Run(proc.returncode, output, results or PROJECT / "results/latest")


@pytest.fixture(scope="session")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-results")


@pytest.fixture(scope="session")
def default_run(results_root) -> Run:
    """`isolharness check` with the default series: what `make check-isol` runs."""
    return run_cli(["check"], results_root / "default" / "latest")


# Commits the e2e tests make: a fixed identity and fixed dates give the same
# commit ids every run, so the harness's trees and build directories of
# them are reused.
GIT_ENV = {"GIT_AUTHOR_NAME": "isolharness e2e", "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
           "GIT_COMMITTER_NAME": "isolharness e2e", "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


def git(repo: Path, *args: str, input_file: Path | None = None) -> str:
    stdin = input_file.open() if input_file else None
    try:
        return subprocess.run(["git", "-C", str(repo), *args], env=GIT_ENV, stdin=stdin, check=True,
                              capture_output=True, text=True).stdout
    finally:
        if stdin:
            stdin.close()


def user_tree(name: str, branch: str, results_root: Path) -> Path:
    """A kernel git tree of a user's, made anew at a fixed path in the cache
    from the pristine base: $CACHE/e2e/<name> on ``branch``. A fixed path
    and fixed commit dates give the same commits every run, so the harness's
    clone, worktree and build directory of the tree are reused."""
    prep = run_cli(["prepare", "--series", "none"], results_root / f"{name}-prepare")
    assert prep.rc == 0, prep.output
    base_tree = Path(prep.output.split(" tree ", 1)[1].split(" at ", 1)[0])
    from harness.cache import cache_dir

    user = cache_dir() / "e2e" / name
    shutil.rmtree(user, ignore_errors=True)
    user.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(base_tree), str(user)], check=True)
    git(user, "checkout", "-q", "-b", branch, git(base_tree, "rev-parse", "HEAD").strip())
    return user


def qemu_processes() -> list[str]:
    res = subprocess.run(["pgrep", "-a", "qemu-system"], capture_output=True, text=True)
    return [line for line in res.stdout.splitlines() if line.strip()]
