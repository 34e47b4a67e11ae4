"""A series whose first patches were applied before starts from them: the
files only those patches touch are not rewritten, so an incremental build
rebuilds only what the differing patches change (mutants, new revisions)."""

import os
import time

from gitrepo import git
from test_ksrc_rewritten import kernel_tree

from harness.apply import apply_series
from harness.series import load_series
from harness.source import prepare_ksrc


def patch_dir(path, work, edits: dict[str, str]):
    """A series directory with one patch making ``edits`` to ``work``'s tree."""
    for name, text in edits.items():
        (work / name).write_text(text)
    git(work, "commit", "-qam", f"edit {' '.join(edits)}")
    path.mkdir(parents=True, exist_ok=True)
    patch = git(work, "format-patch", "-1", "--stdout")
    (path / "0001-edit.patch").write_text(patch)
    (path / "series").write_text("0001-edit.patch\n")
    git(work, "reset", "-q", "--hard", "HEAD~1")
    return load_series(path)


def test_a_second_mutant_rewrites_only_the_files_the_mutants_touch(tmp_path):
    user = kernel_tree(tmp_path / "linux")
    (user / "a.c").write_text("int a;\n")
    (user / "b.c").write_text("int b;\n")
    git(user, "add", "-A")
    git(user, "commit", "-qm", "two files")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(user), str(work))
    cache = tmp_path / "cache"
    src = prepare_ksrc(cache, user)

    series = patch_dir(tmp_path / "series", work, {"kernel/sched/core.c": "int x2;\n"})
    git(work, "am", "-q", str(series.patches[0].path))
    first = apply_series(src, cache, [series, patch_dir(tmp_path / "one" / "mutant", work, {"a.c": "int a2;\n"})])
    core = first.path / "kernel" / "sched" / "core.c"
    stamp = os.stat(core).st_mtime_ns
    time.sleep(0.01)

    second = apply_series(src, cache, [series, patch_dir(tmp_path / "two" / "mutant", work, {"b.c": "int b2;\n"})])
    assert second.path == first.path and second.head_commit != first.head_commit
    assert core.read_text() == "int x2;\n" and os.stat(core).st_mtime_ns == stamp, "the series' own file was rewritten"
    assert (second.path / "a.c").read_text() == "int a;\n"
    assert (second.path / "b.c").read_text() == "int b2;\n"
