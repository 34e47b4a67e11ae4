"""The fault matrix of honest verdicts: real runs in which nothing (or not
everything) was tested, each of which must say so with exit status 2, never
PASS; files the harness did not make are never touched; and nothing a run
started outlives it, even when the harness itself is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from junitparser import Error

from conftest import ISOLHARNESS, PROJECT, qemu_processes, run_cli


def stage_error(run, stage: str) -> str:
    case = run.cases()[f"isolharness.stages::{stage}"]
    errors = [r for r in case.result if isinstance(r, Error)]
    assert errors, (stage, case.result, run.output)
    return errors[0].message


def guest_cases(run) -> list[str]:
    return [n for n in run.cases() if n.startswith("guest::")]


def test_a_guest_pytest_that_cannot_start_is_an_error(results_root, default_run):
    # An expression pytest refuses: it exits 4 (usage error), as it does for
    # a conftest that does not import, leaving an empty JUnit file.
    run = run_cli(["check", "-k", "(", "--timeout", "300"], results_root / "fault-usage")
    assert run.rc == 2, run.output
    msg = stage_error(run, "guest")
    assert "exited 4 (usage error" in msg and "0 testcase(s)" in msg, msg
    assert "verdict: ERROR" in run.output and not guest_cases(run)
    assert run.cases()["isolharness.stages::boot"].result == []


def test_a_selection_that_matches_nothing_is_an_error(results_root, default_run):
    run = run_cli(["check", "-k", "no_such_guest_test_anywhere", "--timeout", "300"],
                  results_root / "fault-empty")
    assert run.rc == 2, run.output
    assert "-k 'no_such_guest_test_anywhere' selected no guest test" in stage_error(run, "guest")
    assert "verdict: ERROR" in run.output


def test_bad_arguments_rotate_nothing_and_previous_is_never_deleted(tmp_path):
    # The reported loss: a file in <dir>/previous was gone after a run with
    # --results <dir>/mine and a wrong --tarball.
    rot = tmp_path / "rot"
    (rot / "previous").mkdir(parents=True)
    (rot / "previous" / "mine.txt").write_text("not the harness's")
    run = run_cli(["check", "--tarball", "/nonexistent.tar.xz"], rot / "mine")
    assert run.rc == 2 and "/nonexistent.tar.xz does not exist" in run.output, run.output
    assert (rot / "previous" / "mine.txt").read_text() == "not the harness's"
    assert not (rot / "mine").exists()
    # A results directory of the harness's with a stranger's 'previous'
    # beside it: refused before anything moves.
    ok = run_cli(["prepare", "--series", "none"], rot / "mine")
    assert ok.rc == 0, ok.output
    from harness.results import MARKER, rotate

    rotate(rot / "mine")  # what an earlier run left: a marked directory
    (rot / "mine" / "junit.xml").write_text("last run")
    run = run_cli(["check", "--series", "none", "-k", "smoke"], rot / "mine")
    assert run.rc == 2 and "was not made by isolharness" in run.output, run.output
    assert (rot / "previous" / "mine.txt").read_text() == "not the harness's"
    assert (rot / "mine" / "junit.xml").read_text() == "last run" and (rot / "mine" / MARKER).is_file()


def test_a_sigkilled_harness_leaves_no_qemu(tmp_path, default_run):
    assert not qemu_processes()
    log = tmp_path / "harness.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(ISOLHARNESS), "exec", "--results", str(tmp_path / "r"), "--timeout", "600",
                                 "--", "sleep", "600"], cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not qemu_processes() and proc.poll() is None:
            time.sleep(0.5)
        time.sleep(2)
        if not qemu_processes():
            # The guest never started, or its QEMU ended on its own: say
            # which, with all the harness printed and the console it kept.
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                rc = None
            console = tmp_path / "r" / "console.log"
            pytest.fail(f"no QEMU running 2 s after the wait (harness exit status {rc}):\n{log.read_text()}\n"
                        f"console:\n{console.read_text()[-3000:] if console.exists() else '(none)'}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(10)
        assert not qemu_processes(), "QEMU outlived the SIGKILLed harness"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_no_space_during_the_build_is_the_environments_fault(tmp_path, default_run):
    # gcc's own "No space left on device", for real: a full tmpfs mounted over
    # one directory of the build, so that make rebuilds its objects there.
    # The kernel is not to blame: exit 2, not 1 (which series and bisect
    # would pin on the patch or the commit).
    from harness.cache import cache_dir

    bdir = Path(default_run.properties()["build_dir"])
    assert bdir.is_relative_to(cache_dir())
    target = bdir / "kernel" / "time"
    stamp = bdir / ".isolharness-build-stamp"
    recorded = stamp.read_text()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(target)], check=True)
    stamp.unlink()  # make must run
    try:
        run = run_cli(["build"], tmp_path / "r")
    finally:
        subprocess.run(["umount", str(target)], check=True)
        # The objects under the tmpfs are back and the image was not relinked:
        # the build directory is the complete build the stamp recorded.
        stamp.write_text(recorded)
    assert run.rc == 2, run.output
    assert "no space left on the device" in run.output and "kernel build stopped" in run.output, run.output
    assert Path(bdir / "kernel" / "time").is_dir()


def test_an_interrupted_boot_is_never_a_pass(tmp_path, default_run):
    """SIGTERM (a CI job cancelled) while the guest runs, then a Ctrl-C while
    it is being stopped: the boot stage is a MISS saying so, the report is
    written and is no PASS, no QEMU stays."""
    results = tmp_path / "r"
    with (tmp_path / "harness.log").open("w") as out:
        proc = subprocess.Popen([str(ISOLHARNESS), "check", "--results", str(results), "-k", "smoke"],
                                cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not qemu_processes() and proc.poll() is None:
            time.sleep(0.5)
        assert qemu_processes(), (tmp_path / "harness.log").read_text()
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)      # a second one while the guest is being stopped
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "harness.log").read_text()
    assert rc != 0 and "verdict: MISS, exit status 2" in output, output
    summary = json.loads((results / "summary.json").read_text())
    assert summary["exit_status"] == 2 and summary["result"] == "MISS"
    boot = next(s for s in summary["stages"] if s["name"] == "boot")
    assert boot["status"] == "missed" and "interrupted" in boot["message"], boot
    time.sleep(5)
    assert not qemu_processes()


def test_a_build_leaves_a_results_directory_the_next_run_may_rotate(tmp_path, default_run):
    """`isolharness build --results DIR` writes build.log into a directory
    it marks as its own, so the next run on DIR rotates it."""
    results = tmp_path / "r"
    built = run_cli(["build"], results)
    assert built.rc == 0 and (results / "build.log").is_file(), built.output
    again = run_cli(["parse", str(PROJECT / "tests/unit/data/console-clean.log")], results)
    assert again.rc == 0, again.output
    assert (tmp_path / "previous" / "build.log").is_file()


@pytest.mark.parametrize("fault, message", [
    ("interrupt", "exited 2 (interrupted) after"),
    ("status", "exited 1 but no testcase failed"),
    ("truncated", "cannot be read"),
])
def test_a_guest_suite_that_did_not_finish_honestly_is_an_error(results_root, default_run, fault, message):
    """tests/guest/faults/ (collected only with ISOLHARNESS_FAULT): pytest
    interrupted mid-run, exiting 1 with every testcase passed, or leaving a
    JUnit file cut in half. Each is an ERROR of the guest stage with the
    guest output's tail, and none of its testcases is reported."""
    run = run_cli(["check", "-k", "test_fault_", "--timeout", "300"], results_root / f"fault-{fault}",
                  env={**os.environ, "ISOLHARNESS_FAULT": fault})
    assert run.rc == 2, run.output
    msg = stage_error(run, "guest")
    assert message in msg, msg
    assert "verdict: ERROR" in run.output and not guest_cases(run)
    assert run.cases()["isolharness.stages::boot"].result == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_no_space_in_a_series_walk_is_the_environments_fault_and_keeps_the_steps(tmp_path, results_root):
    """`isolharness series`: the build after a patch runs out of space (a
    full tmpfs over the objects the patch rebuilds). Not the patch's fault:
    exit 2, the step recorded as a MISS saying so, the checkpatch stage
    before it kept, and the worktree back at the top of the series."""
    from conftest import git

    prep = run_cli(["prepare", "--series", "none"], results_root / "nospc-prepare")
    assert prep.rc == 0, prep.output
    base_tree = Path(prep.output.split(" tree ", 1)[1].split(" at ", 1)[0])
    repo = tmp_path / "repo"
    (repo / "kernel" / "time").mkdir(parents=True)
    original = git(base_tree, "show", "HEAD:kernel/time/time.c")
    git(repo, "init", "-q", "-b", "main")
    (repo / "kernel/time/time.c").write_text(original)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    (repo / "kernel/time/time.c").write_text(original + "\n/* isolharness e2e: no space */\n")
    git(repo, "commit", "-q", "-s", "-a", "-m", "time: add a comment", "-m", "Rebuilds kernel/time/time.o.")
    mbox = tmp_path / "e2e-nospc.mbox"
    mbox.write_text(git(repo, "format-patch", "--stdout", "HEAD~1..HEAD"))

    config = run_cli(["config", "--series", str(mbox)], tmp_path / "config")
    assert config.rc == 0, config.output
    from harness.cache import cache_dir

    [bdir] = (cache_dir() / "work").glob("*-e2e-nospc/build/base+isolation")
    target = bdir / "kernel" / "time"
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(target)], check=True)
    try:
        run = run_cli(["series", str(mbox), "-k", "smoke"], tmp_path / "series")
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert run.rc == 2, run.output
    cases = run.cases()
    assert cases["isolharness.stages::checkpatch 01/01"].result == [], run.output
    step = stage_error(run, "builds after 01/01")
    assert "no space left on the device" in step and step.startswith("time: add a comment"), step
    assert "isolharness.stages::build" not in cases or cases["isolharness.stages::build"].result, cases
    assert "verdict: MISS" in run.output
    [tree] = (cache_dir() / "work").glob("*-e2e-nospc/src")
    assert git(tree, "log", "-1", "--format=%s") == "time: add a comment\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_bisect_whose_environment_fails_stops_and_says_why(tmp_path, results_root):
    """The steps' results directory is on a read-only file system: no step
    can test anything. The bisect stops (exit 2) naming the fault; it does
    not skip or mark commits."""
    from conftest import git, user_tree
    from harness.bisect import workdir
    from harness.cache import cache_dir

    user = user_tree("bisect-rofs", "rofs", results_root)
    for n in (1, 2):
        (user / "kernel" / "sys.c").write_text((user / "kernel" / "sys.c").read_text() + f"\n/* e2e rofs {n} */\n")
        git(user, "commit", "-q", "-a", "-m", f"sys: harmless comment {n}")
    good, bad = git(user, "rev-parse", "HEAD~2").strip(), git(user, "rev-parse", "HEAD").strip()
    work = workdir(cache_dir(), user.resolve(), good, bad)
    steps = work / "steps"
    steps.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(steps)], check=True)
    try:
        run = run_cli(["bisect", "--ksrc", str(user), "--good", good, "--bad", bad, "-k", "smoke"],
                      tmp_path / "bisect")
    finally:
        subprocess.run(["umount", str(steps)], check=True)
    assert run.rc == 2, run.output
    assert "read-only" in run.output, run.output
    assert "first bad commit" not in run.output
    # No commit was judged: nothing logged good, bad or skipped.
    logged = (work / "steps.jsonl").read_text().splitlines() if (work / "steps.jsonl").is_file() else []
    assert not [line for line in logged if any(f'"verdict": "{v}"' in line for v in ("good", "bad", "skip"))], logged


def test_a_bug_of_the_harness_still_ends_in_a_report_and_exit_2(tmp_path):
    """An exception no stage expects (injected between prepare and config):
    the run writes its report, names the bug with its traceback, and exits
    2, never 1 (which would blame the kernel) nor a bare traceback."""
    run = run_cli(["check", "--series", "none", "-k", "smoke"], tmp_path / "r",
                  env={**os.environ, "ISOLHARNESS_FAULT": "harness-bug"})
    assert run.rc == 2, run.output
    assert "internal error of isolharness: RuntimeError: injected" in run.output
    assert "Traceback (most recent call last)" in run.output
    assert "verdict: ERROR" in run.output
    summary = json.loads((run.results / "summary.json").read_text())
    stages = {s["name"]: s["status"] for s in summary["stages"]}
    assert stages["prepare"] == "passed" and stages["harness"] == "error", stages
    assert summary["exit_status"] == 2
