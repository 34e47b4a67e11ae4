"""Every patch builds: check out each commit of the applied series in turn
and build it incrementally in the run's build directory, so that a series
that does not bisect is caught at the patch that breaks it.

Each step starts from the configuration of the top of the series; Kconfig
drops the symbols a commit does not know yet. The worktree and the .config
are put back to the top afterwards, whatever happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import git as g
from .apply import AppliedTree
from .build import build_kernel
from .errors import BuildError, HarnessError
from .kconfig import KernelConfig
from .outcome import FAILED, PASSED, StageResult


@dataclass(frozen=True)
class SeriesCommit:
    index: int
    total: int
    commit: str
    subject: str

    @property
    def label(self) -> str:
        return f"{self.index:02d}/{self.total:02d}"


def series_commits(tree: AppliedTree) -> list[SeriesCommit]:
    """The commits the series added on the base, oldest first."""
    out = g.git(tree.path, "log", "--reverse", "--format=%H %s", f"{tree.base_commit}..{tree.head_commit}")
    lines = [line for line in out.splitlines() if line.strip()]
    commits = []
    for i, line in enumerate(lines, 1):
        sha, _, subject = line.partition(" ")
        commits.append(SeriesCommit(i, len(lines), sha, subject))
    return commits


def build_each(tree: AppliedTree, kcfg: KernelConfig, cache: Path, results: Path,
               jobs: int | None, remote: str, stages: list[StageResult]) -> None:
    """One StageResult per commit, appended to ``stages`` as each ends:
    passed if the kernel builds there, failed if it does not. A build the
    environment stopped (no space, a read-only file system) is recorded
    as such and ends the walk, its error raised: the commits after it are
    not judged."""
    commits = series_commits(tree)
    config = kcfg.build_dir / ".config"
    saved = config.read_bytes()
    try:
        for c in commits:
            print(f"series: building after patch {c.label}: {c.subject}", flush=True)
            g.git(tree.path, "checkout", "-q", "-f", "--detach", c.commit)
            config.write_bytes(saved)
            start = time.monotonic()
            name = f"builds after {c.label}"
            try:
                build_kernel(tree.path, kcfg.build_dir, cache, results / f"build-{c.index:02d}.log", jobs,
                             remote=remote)
            except BuildError as exc:
                stages.append(StageResult(name, FAILED, time.monotonic() - start,
                                          f"{c.subject}: the kernel does not build after this patch",
                                          exc.render()))
                continue
            except HarnessError as exc:
                stages.append(StageResult(name, exc.status, time.monotonic() - start,
                                          f"{c.subject}: {exc.message}", exc.render()))
                raise
            stages.append(StageResult(name, PASSED, time.monotonic() - start, c.subject))
    finally:
        g.git(tree.path, "checkout", "-q", "-f", "--detach", tree.head_commit)
        config.write_bytes(saved)
