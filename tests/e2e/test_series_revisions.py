"""`isolharness series` for real: two revisions of a small series on the
default base. The first builds after its one patch, passes checkpatch and
the guest smoke tests; the second breaks the build in its second patch and
fixes it in the third, so it must be reported as not bisectable, and as a
regression against the first revision's summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, run_cli

FILE = "kernel/sys.c"
BROKEN = "int isolharness_e2e_broken = ;\n"


@pytest.fixture(scope="module")
def mboxes(tmp_path_factory, results_root) -> tuple[Path, Path]:
    """(v1, v2): the same series name, so both revisions share a worktree and
    a build directory, as consecutive revisions do in CI."""
    prep = run_cli(["prepare", "--series", "none"], results_root / "rev-prepare")
    assert prep.rc == 0, prep.output
    tree = Path(prep.output.split(" tree ", 1)[1].split(" at ", 1)[0])
    original = git(tree, "show", f"HEAD:{FILE}")

    work = tmp_path_factory.mktemp("rev")
    repo = work / "repo"
    (repo / "kernel").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / FILE).write_text(original)
    git(repo, "add", FILE)
    git(repo, "commit", "-q", "-m", "base")

    def commit(text: str, subject: str, body: str) -> None:
        (repo / FILE).write_text(text)
        git(repo, "commit", "-q", "-s", "-a", "-m", subject, "-m", body)

    noted = original + "\n/* Touched by the isolharness end-to-end tests. */\n"
    commit(noted, "sys: add a comment", "A harmless change that builds.")
    commit(noted + BROKEN, "sys: add a broken definition", "This one does not compile.")
    commit(noted, "sys: remove the broken definition", "Back to building.")

    v1, v2 = work / "v1" / "e2e-rev.mbox", work / "v2" / "e2e-rev.mbox"
    v1.parent.mkdir()
    v2.parent.mkdir()
    v1.write_text(git(repo, "format-patch", "--stdout", "HEAD~3..HEAD~2"))
    v2.write_text(git(repo, "format-patch", "--stdout", "--cover-letter", "HEAD~3..HEAD"))
    return v1, v2


def test_series_revisions_checkpatch_bisectability_and_baseline(mboxes, results_root):
    v1, v2 = mboxes
    first = run_cli(["series", str(v1), "-k", "smoke"], results_root / "rev-v1")
    assert first.rc == 0, first.output
    cases = first.cases()
    assert cases["isolharness.stages::checkpatch 01/01"].result == [], first.output
    assert cases["isolharness.stages::builds after 01/01"].result == [], first.output
    assert any(n.startswith("guest::") for n in cases), sorted(cases)

    second = run_cli(["series", str(v2), "-k", "smoke", "--baseline", str(first.results / "summary.json")],
                     results_root / "rev-v2")
    assert second.rc == 1, second.output
    cases = second.cases()
    assert cases["isolharness.stages::builds after 01/03"].result == []
    broken = cases["isolharness.stages::builds after 02/03"]
    assert broken.result and "does not build after this patch" in broken.result[0].message
    assert "isolharness_e2e_broken" in (broken.result[0].text or ""), broken.result[0].text
    assert cases["isolharness.stages::builds after 03/03"].result == []
    assert sum(1 for n in cases if n.startswith("isolharness.stages::checkpatch ")) == 3
    assert cases["isolharness.stages::build"].result == []  # the top builds
    # checkpatch warns about the broken patch too; both are new failures.
    assert "new failures     2" in second.output and "x stage::builds after 02/03" in second.output
    assert "x stage::checkpatch 02/03" in second.output
    assert "regression: yes" in second.output
    assert (second.results / "comparison.json").is_file()
    # The worktree is back at the top of the series, not at the broken patch.
    from harness.cache import cache_dir

    [tree] = (cache_dir() / "work").glob("*-e2e-rev/src")
    assert git(tree, "log", "-1", "--format=%s") == "sys: remove the broken definition\n"
    assert BROKEN.strip() not in (tree / FILE).read_text()


def test_series_bad_inputs(tmp_path):
    empty = tmp_path / "empty.mbox"
    empty.write_text("")
    run = run_cli(["series", str(empty)], tmp_path / "r1")
    assert run.rc == 2 and "empty file, not a series" in run.output
    run = run_cli(["series", "v1..v2"], tmp_path / "r2")
    assert run.rc == 2 and "needs --ksrc" in run.output
    run = run_cli(["series", str(empty), "--series", "none"], tmp_path / "r3")
    assert run.rc == 2 and "not --series" in run.output
    run = run_cli(["series", str(empty), "--baseline", str(tmp_path / "missing.json")], tmp_path / "r4")
    assert run.rc == 2 and "baseline" in run.output and "does not exist" in run.output
