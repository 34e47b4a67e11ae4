"""The compiler cache's settings, with the real gcc and ccache: two trees in
the cache's layout share hits whatever their keys and whatever the cache's
own path (another machine); one build's calls are counted from its stats
log; a remote storage is probed once, and one that does not answer is left
out and said, a malformed one refused."""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from harness.cache import build_path, tree_path
from harness.ccache import (CcacheStats, check_remote_setting, ccache_env, mask_password, probe_remote,
                            read_stats, remote_setting)
from harness.errors import HarnessError

needs_ccache = pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed (make deps)")

SOURCE = '#include "h.h"\nconst char *where(void) { return __FILE__; }\nint f(void) { return X; }\n'


def tree_in(cache: Path, key: str) -> tuple[Path, Path]:
    src, bdir = tree_path(cache, key), build_path(cache, key, "base+isolation")
    (src / "kernel").mkdir(parents=True)
    bdir.mkdir(parents=True)
    (src / "kernel" / "x.c").write_text(SOURCE)
    (src / "include").mkdir()
    (src / "include" / "h.h").write_text("#define X 3\n")
    return src, bdir


def kbuild_cc(cache: Path, ccdir: Path, src: Path, bdir: Path, stats: Path, remote: str = "") -> None:
    """gcc called as Kbuild calls it from O=: absolute paths into the tree,
    the macro prefix map, a dependency file."""
    env = {**os.environ, **ccache_env(cache, probe_remote(remote), stats), "CCACHE_DIR": str(ccdir)}
    (bdir / "kernel").mkdir(exist_ok=True)
    subprocess.run(["ccache", "gcc", f"-Wp,-MMD,kernel/.x.o.d", f"-I{src}/include", f"-fmacro-prefix-map={src}/=",
                    "-c", "-o", "kernel/x.o", f"{src}/kernel/x.c"], cwd=bdir, env=env, check=True,
                   capture_output=True)


@needs_ccache
def test_trees_of_other_keys_and_other_caches_hit_each_others_objects(tmp_path):
    ccdir = tmp_path / "ccache"
    one, two = tmp_path / "machine-a" / "cache", tmp_path / "elsewhere" / "b"
    runs = [(one, "tar-c93391b6a488-task-isolation+block-interf"), (one, "git-0123456789ab-none"),
            (two, "git-ba9876543210-e2e-rev")]
    for i, (cache, key) in enumerate(runs):
        src, bdir = tree_in(cache, key)
        kbuild_cc(cache, ccdir, src, bdir, tmp_path / f"stats-{i}.log")
    got = [read_stats(tmp_path / f"stats-{i}.log") for i in range(3)]
    assert got[0] == CcacheStats(misses=1)
    assert got[1] == CcacheStats(local_hits=1) and got[2] == CcacheStats(local_hits=1)


@needs_ccache
def test_one_builds_log_counts_its_hits_misses_uncached_calls_and_remote_errors(tmp_path):
    cache = tmp_path / "cache"
    src, bdir = tree_in(cache, "k")
    log = tmp_path / "stats.log"
    kbuild_cc(cache, cache / "ccache", src, bdir, log)
    kbuild_cc(cache, cache / "ccache", src, bdir, log)
    env = {**os.environ, **ccache_env(cache, None, log)}
    subprocess.run(["ccache", "gcc", "-shared", "-o", "x.so", "kernel/x.o"], cwd=bdir, env=env, check=True)
    (src / "include" / "h.h").write_text("#define X 4\n")
    # A storage that answered the probe and went away during the build.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    up = f"redis://127.0.0.1:{listening.getsockname()[1]}"
    remote = probe_remote(up)
    listening.close()
    env = {**os.environ, **ccache_env(cache, remote, log)}
    subprocess.run(["ccache", "gcc", "-Wp,-MMD,kernel/.x.o.d", f"-I{src}/include", "-c", "-o", "kernel/x.o",
                    f"{src}/kernel/x.c"], cwd=bdir, env=env, check=True, capture_output=True)
    stats = read_stats(log)
    assert stats == CcacheStats(local_hits=1, remote_hits=0, misses=2, uncached=1, remote_errors=1), stats
    assert stats.describe() == "1 local hits, 0 remote hits, 2 misses of 3 cacheable compiles, 1 remote storage errors"
    assert read_stats(tmp_path / "none.log") == CcacheStats()


def test_a_remote_that_does_not_answer_is_left_out_and_said(tmp_path):
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    up = f"redis://127.0.0.1:{listening.getsockname()[1]}|connect-timeout=200"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    down = f"redis://u:secret@127.0.0.1:{port}"
    try:
        remote = probe_remote(f"{up} {down} file:{tmp_path}")
    finally:
        listening.close()
        closed.close()
    assert remote is not None
    assert remote.usable == f"{up} file:{tmp_path}"
    assert remote.problems == (f"redis://u:***@127.0.0.1:{port} unreachable: connection refused",)
    assert "secret" not in remote.describe() and "connection refused" in remote.describe()
    assert ccache_env(tmp_path, remote)["CCACHE_REMOTE_STORAGE"] == remote.usable
    # None asked for: none used, even one from the user's ccache.conf.
    assert probe_remote("") is None and ccache_env(tmp_path)["CCACHE_REMOTE_STORAGE"] == ""
    nodir = probe_remote(f"file:{tmp_path / 'absent'}")
    assert nodir is not None and nodir.usable == "" and "not a writable directory" in nodir.problems[0]


@pytest.mark.parametrize("url, says", [
    ("redis://:6379", "names no host"),
    ("redis://host:port", "bad port"),
    ("memcached://host", "knows no storage 'memcached'"),
    ("file:", "names no path"),
])
def test_a_url_ccache_would_not_take_is_refused_before_anything_runs(url, says):
    with pytest.raises(HarnessError, match=says):
        check_remote_setting(url)


def test_the_flag_wins_over_the_environment_and_an_empty_flag_means_none(monkeypatch):
    monkeypatch.setenv("ISOLHARNESS_CCACHE_REMOTE", "redis://from-env")
    assert remote_setting(None) == "redis://from-env"
    assert remote_setting("http://flag/x") == "http://flag/x"
    assert remote_setting("") == ""
    assert mask_password("redis://user:pw@h:1|x=y") == "redis://user:***@h:1|x=y"
    assert mask_password("http://h/p") == "http://h/p"


def test_the_summary_line_comes_from_the_saved_properties():
    from harness.summary import Summary, render

    stats = CcacheStats(local_hits=25, remote_hits=1187, misses=1, uncached=77, remote_errors=2)
    assert CcacheStats.from_properties(stats.properties()) == CcacheStats(25, 1187, 1, 0, 2)
    assert CcacheStats.from_properties({"build_dir": "/x"}) is None
    props = {**stats.properties(), "ccache_remote": "redis://127.0.0.1:6379"}
    text = render(Summary(props, [], [], []))
    assert "  ccache       2% local hits, 98% remote hits of 1213 compiles; remote redis://127.0.0.1:6379, 2 errors" \
        in text.splitlines()
    assert "ccache" not in render(Summary({"build_dir": "/x"}, [], [], []))
