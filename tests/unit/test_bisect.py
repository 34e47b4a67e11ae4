"""isolharness bisect, the parts without a kernel: verdict mapping, the run
options a step inherits, and reading git bisect run's real output."""

import os
import subprocess
from pathlib import Path

import pytest
from gitrepo import git, make_repo

from harness.bisect import ABORT, BAD, GOOD, SKIP, _options_from_json, _options_to_json, _parse_outcome, classify, render
from harness.pipeline import RunOptions
from harness.profile import make_profile


@pytest.mark.parametrize("status, failed, verdict", [
    (0, [], GOOD),
    (2, ["prepare"], ABORT),     # the environment failed: stop, never skip the commit
    (2, ["guest"], ABORT),
    (1, ["build"], SKIP),
    (1, ["config"], SKIP),
    (1, ["boot"], BAD),
    (1, ["test_unprivileged_write_is_refused_and_keeps_the_mask"], BAD),
])
def test_classify(status, failed, verdict):
    assert classify(status, failed)[0] == verdict


def test_step_options_round_trip():
    opts = RunOptions(ksrc=Path("/src/linux"), select="unprivileged", expect=["block-interf"],
                      fragments=["base", "isolation", "debug"], timeout=600.0)
    opts.profile = make_profile("default", 2, "1G", None, ["quiet"])
    back = _options_from_json(_options_to_json(opts))
    assert back == opts


def bisect_run(repo: Path, script: str) -> str:
    step = repo.parent / "step.sh"
    step.write_text("#!/bin/sh\n" + script)
    step.chmod(0o755)
    git(repo, "bisect", "start", "--no-checkout", "HEAD", "HEAD~6")
    res = subprocess.run(["git", "-C", str(repo), "bisect", "run", str(step)], capture_output=True, text=True,
                         env={**os.environ, "LC_ALL": "C"})
    return res.stdout + res.stderr


def test_the_answer_is_refs_bisect_bad_not_the_words(tmp_path):
    # The text is only the sign that git finished; the commit comes from
    # refs/bisect/bad, whatever the output around it says.
    repo = make_repo(tmp_path / "r", [f"c{i}" for i in range(1, 7)])
    bisect_run(repo, 'n=$(git show BISECT_HEAD:f.c | wc -l); [ "$n" -lt 5 ]\n')
    misleading = "0123456789abcdef0123456789abcdef01234567 is the first bad commit\n"
    result = _parse_outcome(repo, misleading, [])
    assert result.first_bad == git(repo, "rev-parse", "HEAD~2").strip() and result.subject == "c4"


def test_first_bad_commit_from_real_output(tmp_path):
    repo = make_repo(tmp_path / "r", [f"c{i}" for i in range(1, 7)])
    out = bisect_run(repo, 'n=$(git show BISECT_HEAD:f.c | wc -l); [ "$n" -lt 5 ]\n')
    result = _parse_outcome(repo, out, [])
    assert result.subject == "c4"
    assert result.first_bad == git(repo, "rev-parse", "HEAD~2").strip()
    assert "first bad commit: " + result.first_bad in render(result)


def test_only_skipped_commits_left_from_real_output(tmp_path):
    repo = make_repo(tmp_path / "r", [f"c{i}" for i in range(1, 7)])
    out = bisect_run(repo, 'n=$(git show BISECT_HEAD:f.c | wc -l)\n[ "$n" -lt 3 ] && exit 0\n'
                           '[ "$n" -gt 5 ] && exit 1\nexit 125\n')
    result = _parse_outcome(repo, out, [])
    assert result.first_bad is None and len(result.candidates) >= 2


def test_step_ignores_the_repository_git_bisect_run_exports(tmp_path, monkeypatch):
    """git bisect run sets GIT_DIR to the bisect clone; the step must still
    see --ksrc as its own repository."""
    from harness import git as g

    repo = make_repo(tmp_path / "r", ["c1"])
    other = make_repo(tmp_path / "o", [])
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    g.scrub_repo_env()
    assert g.git(repo, "log", "-1", "--format=%s").strip() == "c1"


def test_an_abort_says_what_stopped_the_step():
    from harness.summary import CaseSummary, Summary
    from harness.bisect import first_error

    stages = [CaseSummary("isolharness.stages", "prepare", "passed", 1.0, ""),
              CaseSummary("isolharness.stages", "build", "missed", 2.0, "no space left on the device: kernel build stopped\nmore")]
    summary = Summary({}, stages, [], [], 2, {}, "MISS")
    assert first_error(summary) == "build: no space left on the device: kernel build stopped"
    verdict, reason = classify(2, ["build"], first_error(summary))
    assert reason == ("the harness or its environment failed, not the kernel: bisect stopped "
                      "(build: no space left on the device: kernel build stopped)")
    assert first_error(Summary({}, stages[:1], [], [], 0, {}, "PASS")) == ""
