"""A --ksrc tree whose history was rewritten and pruned: the harness's clone
borrows the tree's objects, so its old refs point at nothing. The next run
must recover (drop those refs, move its worktree to the new base), not stop
with git's "bad object"."""

import subprocess

from gitrepo import ENV, git

from harness.apply import apply_series
from harness.source import prepare_ksrc


def kernel_tree(path):
    for d in ("kernel/sched", "scripts/kconfig"):
        (path / d).mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    (path / "Kconfig").write_text("")
    (path / "kernel" / "sched" / "core.c").write_text("int x;\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    return path


def test_a_rewritten_and_pruned_tree_is_prepared_again(tmp_path):
    user = kernel_tree(tmp_path / "linux")
    (user / "kernel" / "sched" / "core.c").write_text("int y;\n")
    git(user, "commit", "-qam", "first version")
    cache = tmp_path / "cache"
    first = prepare_ksrc(cache, user)
    tree = apply_series(first, cache, [])
    assert tree.head_commit == first.base_commit

    git(user, "commit", "-q", "--amend", "-m", "second version")   # history rewritten
    subprocess.run(["git", "-C", str(user), "reflog", "expire", "--expire=now", "--all"], env=ENV, check=True)
    subprocess.run(["git", "-C", str(user), "gc", "-q", "--prune=now"], env=ENV, check=True)

    second = prepare_ksrc(cache, user)
    assert second.base_commit != first.base_commit
    again = apply_series(second, cache, [])
    assert again.head_commit == second.base_commit and again.path == tree.path
