"""Bad input gets a clear, specific error, loses nothing, and the next run works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ISOLHARNESS, PROJECT, git, run_cli


def test_ksrc_not_a_git_tree(tmp_path):
    run = run_cli(["prepare", "--ksrc", str(tmp_path)], tmp_path / "r")
    assert run.rc == 2 and "is not a git repository" in run.output


def test_ksrc_not_a_kernel(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("hello\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    run = run_cli(["prepare", "--ksrc", str(tmp_path)], tmp_path / "r")
    assert run.rc == 2 and "is not a kernel source tree" in run.output


def test_missing_and_corrupt_tarball(tmp_path):
    run = run_cli(["prepare", "--tarball", str(tmp_path / "none.tar.xz")], tmp_path / "r")
    assert run.rc == 2 and "does not exist" in run.output
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(os.urandom(4096))
    cache = tmp_path / "cache"
    run = run_cli(["prepare", "--tarball", str(bad), "--cache", str(cache)], tmp_path / "r")
    assert run.rc == 2 and "corrupt or truncated" in run.output and "reinstall" in run.output
    # Nothing half-made is left under the final name.
    assert not [p for p in (cache / "src").iterdir() if not p.name.endswith(".partial")]


def test_series_file_names_missing_patch(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    (d / "series").write_text("0001-missing.patch\n")
    run = run_cli(["prepare", "--series", str(d)], tmp_path / "r")
    assert run.rc == 2 and "names '0001-missing.patch', which does not exist" in run.output


def test_series_as_an_mbox_applies_in_numbered_order(tmp_path):
    """The block-interf patches as one mbox, cover letter first and patches in
    reverse order, give the same commits as the series directory."""
    d = PROJECT / "patches" / "block-interf"
    names = [n for n in (d / "series").read_text().split() if n.endswith(".patch")]
    cover = ("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
             "From: Test <test@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
             f"Subject: [PATCH 00/{len(names)}] block interference\n\nThe cover letter.\n\n")
    box = tmp_path / "bi-v1.mbox"
    box.write_text(cover + "".join((d / n).read_text() + "\n" for n in reversed(names)))
    run = run_cli(["prepare", "--series", str(box)], tmp_path / "r")
    assert run.rc == 0, run.output
    tree = Path(run.output.split(" tree ", 1)[1].split(" at ", 1)[0])
    subjects = git(tree, "log", "--format=%s", f"-{len(names)}").splitlines()
    expected = [git(tree, "mailinfo", "/dev/null", "/dev/null", input_file=d / n).split("Subject: ", 1)[1]
                .splitlines()[0] for n in names]
    assert subjects == list(reversed(expected))

    bad = tmp_path / "bad.mbox"
    bad.write_text("Subject: no separator\n\nhello\n")
    run = run_cli(["prepare", "--series", str(bad)], tmp_path / "r2")
    assert run.rc == 2 and "not an mbox" in run.output, run.output


def test_unknown_series_lists_known_ones(tmp_path):
    run = run_cli(["prepare", "--series", "no-such-series"], tmp_path / "r")
    assert run.rc == 2 and "unknown series 'no-such-series'" in run.output and "known series" in run.output


def test_bad_arguments(tmp_path):
    run = run_cli(["check", "--cpus", "64"], tmp_path / "r")
    assert run.rc == 2 and "--cpus 64 is out of range" in run.output
    run = run_cli(["check", "--memory", "lots"], tmp_path / "r")
    assert run.rc == 2 and "is not a size" in run.output
    run = run_cli(["check", "--accel", "hvf"], tmp_path / "r")
    assert run.rc == 2 and "invalid choice" in run.output


def test_patch_that_does_not_apply(tmp_path):
    d = tmp_path / "wont-apply"
    d.mkdir()
    (d / "0001-bad.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: Test <test@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
        "Subject: [PATCH] touch a line that is not there\n\n---\n"
        " kernel/sys.c | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\n"
        "diff --git a/kernel/sys.c b/kernel/sys.c\n--- a/kernel/sys.c\n+++ b/kernel/sys.c\n"
        "@@ -1,3 +1,3 @@\n-this line does not exist\n+neither does this one\n context\n context\n"
        "-- \n2.39.5\n\n")
    (d / "series").write_text("0001-bad.patch\n")
    run = run_cli(["prepare", "--series", str(d)], tmp_path / "r")
    assert run.rc == 1, run.output
    assert "patch wont-apply/0001-bad.patch does not apply" in run.output
    assert "patch failed: kernel/sys.c" in run.output or "does not match index" in run.output or "error:" in run.output
    # The base tree is untouched and the next run with the default series works.
    again = run_cli(["prepare"], tmp_path / "r2")
    assert again.rc == 0, again.output


def test_fragment_option_kconfig_drops(tmp_path):
    frag = tmp_path / "bogus.config"
    frag.write_text("CONFIG_ISOLHARNESS_NO_SUCH_OPTION=y\n# CONFIG_PRINTK is not set\nCONFIG_PRINTK=y\n"
                    "CONFIG_KASAN=y\n")
    run = run_cli(["config", "--kconfig", "base", "--kconfig", "isolation", "--kconfig", str(frag)], tmp_path / "r")
    assert run.rc == 2, run.output
    assert "CONFIG_ISOLHARNESS_NO_SUCH_OPTION: requested y, got n (no such option in this kernel)" in run.output
    assert "CONFIG_KASAN: requested y, got n (unmet dependencies)" in run.output


def test_missing_fragment(tmp_path):
    run = run_cli(["config", "--kconfig", "nonexistent"], tmp_path / "r")
    assert run.rc == 2 and "config fragment 'nonexistent' not found" in run.output


def test_dirty_ksrc_is_refused_and_clean_one_untouched(tmp_path):
    """--ksrc: refuse uncommitted changes; otherwise never touch the tree."""
    from harness.cache import cache_dir
    from harness.source import prepare_tarball

    src = prepare_tarball(cache_dir())
    user = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", "--shared", str(src.repo), str(user)], check=True)
    git(user, "checkout", "-q", "-b", "mywork")
    before = (git(user, "rev-parse", "HEAD"), git(user, "branch", "--list"), git(user, "status", "--porcelain"))
    run = run_cli(["prepare", "--ksrc", str(user)], tmp_path / "r")
    assert run.rc == 0, run.output
    after = (git(user, "rev-parse", "HEAD"), git(user, "branch", "--list"), git(user, "status", "--porcelain"))
    assert before == after
    assert not (user / ".git" / "worktrees").exists()
    with open(user / "Makefile", "a") as f:
        f.write("# local edit\n")
    run = run_cli(["prepare", "--ksrc", str(user)], tmp_path / "r")
    assert run.rc == 2 and "uncommitted changes" in run.output and "git stash" in run.output


def test_two_runs_at_once_wait_for_each_other(tmp_path, default_run):
    cmd = [str(ISOLHARNESS), "config"]
    procs = [subprocess.Popen(cmd + ["--results", str(tmp_path / f"r{i}")], cwd=PROJECT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for" in o for o in outs), outs


def test_ctrl_c_during_build_then_next_run_works(tmp_path, default_run):
    from harness.cache import cache_dir

    tree = Path(default_run.properties()["build_dir"]).parents[1] / "src"
    assert tree.is_relative_to(cache_dir())
    os.utime(tree / "kernel" / "sys.c")  # forces a rebuild without changing the source
    os.utime(tree / "mm" / "vmstat.c")
    proc = subprocess.Popen([str(ISOLHARNESS), "build", "--results", str(tmp_path / "r")], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", f"O={cache_dir()}/work/"], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    assert "interrupted" in out
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", f"O={cache_dir()}/work/"], capture_output=True).returncode == 1
    again = run_cli(["build"], tmp_path / "r2")
    assert again.rc == 0, again.output


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_no_space_in_cache_is_reported(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        run = run_cli(["prepare", "--cache", str(small)], tmp_path / "r")
        assert run.rc == 2, run.output
        assert "GiB free in" in run.output and "ISOLHARNESS_CACHE" in run.output
    finally:
        subprocess.run(["umount", str(small)], check=False)
