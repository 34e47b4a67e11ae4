"""Build work shared across trees and across machines, with a real Redis
server on 127.0.0.1 as ccache's remote storage.

1. Another tree with the same sources (a --ksrc tree holding the base and
   the default series, where the default run built the tarball's tree) is
   built from local hits: the cache's layout puts every tree in the same
   place relative to its build directory. That build fills the Redis server
   (CCACHE_RESHARE: ccache's own setting, which sends local hits there too).
2. A second harness cache, empty (another runner of a CI fleet), pointed at
   the same server: its build is mostly remote hits, the summary says so,
   and the kernel it built boots.
3. A remote storage that does not answer is left out and reported; the
   build goes on and passes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, user_tree
from servers import ServerError, free_port, redis_server

from harness.ccache import read_stats


@pytest.fixture
def redis(tmp_path):
    try:
        with redis_server(tmp_path / "redis") as url:
            yield url
    except ServerError as e:
        pytest.fail(str(e))


def build_line(output: str) -> str:
    return next(ln for ln in output.splitlines() if ln.startswith("build: ccache:"))


def test_trees_and_machines_share_build_work_through_the_layout_and_a_remote_cache(
        results_root, default_run, redis, tmp_path):
    assert default_run.rc == 0, default_run.output
    user = user_tree("shared-linux", "main", results_root)
    prep = run_cli(["prepare", "--ksrc", str(user)], results_root / "shared-prepare")
    assert prep.rc == 0, prep.output
    tree = Path(prep.output.split(" tree ", 1)[1].split(" at ", 1)[0])
    assert tree.name == "src" and tree.parent.name.startswith("git-"), tree
    # This tree's first build, on every run of the suite: its build
    # directories are the harness's, made by the prepare above or an earlier run.
    shutil.rmtree(tree.parent / "build", ignore_errors=True)

    env = {**os.environ, "CCACHE_RESHARE": "1"}
    first = run_cli(["build", "--ksrc", str(user), "--ccache-remote", redis], results_root / "shared-1", env=env)
    assert first.rc == 0, first.output
    one = read_stats(results_root / "shared-1" / "build-ccache.log")
    assert one.cacheable > 900, (one, build_line(first.output))
    assert one.local_hits >= 0.95 * one.cacheable, f"another tree was not built from hits: {build_line(first.output)}"
    assert build_line(first.output) == f"build: ccache: {one.describe()}"

    # Another machine: an empty harness cache, the same remote storage.
    other = tmp_path / "other-runner"
    env = {**os.environ, "ISOLHARNESS_CACHE": str(other), "ISOLHARNESS_CCACHE_REMOTE": redis}
    second = run_cli(["check", "--accel", "tcg", "-k", "smoke"], results_root / "shared-2", env=env)
    try:
        assert second.rc == 0, second.output
        props = second.properties()
        hits, misses, local = (int(props[f"ccache_{k}"]) for k in ("remote_hits", "misses", "local_hits"))
        assert hits >= 0.95 * (hits + misses + local), props
        assert props["ccache_remote"] == redis and props["ccache_remote_errors"] == "0"
        assert "% remote hits of" in second.output and props["build_dir"].startswith(str(other))
        assert props["kernel_build_id"] == props["built_build_id"]

        # The remote storage gone: left out, said, and the build still passes.
        closed = f"redis://127.0.0.1:{free_port()}"
        (Path(props["build_dir"]).parents[1] / "src" / "kernel" / "sys.c").touch()
        third = run_cli(["build", "--ccache-remote", closed], results_root / "shared-3",
                        env={**env, "ISOLHARNESS_CCACHE_REMOTE": ""})
        assert third.rc == 0, third.output
        assert f"build: remote ccache left out: {closed} unreachable: connection refused" in third.output
        assert read_stats(results_root / "shared-3" / "build-ccache.log").remote_errors == 0
    finally:
        shutil.rmtree(other, ignore_errors=True)
