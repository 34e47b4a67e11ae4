"""The one verdict path (harness/target.py): whatever target ran the
command, what came back is judged the same way, and the target is closed
whatever happened."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_guest_verdict import PASSING

from harness import bisect
from harness.outcome import ERROR, FAILED, MISSED, PASSED, StageResult
from harness.report import report
from harness.collection import KunitCollection
from harness.target import INTERRUPTED, Ran, judge, run_on

DATA = Path(__file__).parent / "data"


def ran(tmp_path: Path, **kw) -> Ran:
    junit = tmp_path / "guest-junit.xml"
    junit.write_text(PASSING)
    output = tmp_path / "guest-output.log"
    output.write_text("ISOLHARNESS-GUEST-START\n2 passed\n")
    fields = dict(status=0, timed_out=False, duration=1.0, output=output, junit=junit,
                  kernel_log=(DATA / "console-clean.log").read_text())
    fields.update(kw)
    return Ran(**fields)


class Recorded:
    """A target that hands back a prepared Ran, or raises, and records
    whether it was closed."""

    stage = "remote"
    setup_stages = ("connect",)
    collections = ()

    def __init__(self, result: Ran | BaseException):
        self.result = result
        self.closed = 0

    def open(self, stages: list[StageResult]) -> None:
        stages.append(StageResult("connect", PASSED))

    def run(self, suite: bool, timeout: float) -> Ran:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    def close(self) -> None:
        self.closed += 1


def test_a_passing_run_is_judged_and_the_target_closed(tmp_path):
    target, stages = Recorded(ran(tmp_path)), []
    judged = run_on(target, stages, True, None, 60)
    assert [(s.name, s.status) for s in stages] == [("connect", PASSED), ("remote", PASSED), ("guest", PASSED)]
    assert judged.scanned and not judged.splats and judged.guest_junit is not None
    assert target.closed == 1


def test_an_interrupt_while_running_is_a_miss_of_that_stage_never_a_pass(tmp_path):
    target, stages = Recorded(KeyboardInterrupt()), []
    with pytest.raises(KeyboardInterrupt):
        run_on(target, stages, True, None, 60)
    assert stages[-1].name == "remote" and stages[-1].status == MISSED and stages[-1].message == INTERRUPTED
    assert target.closed == 1
    summary = report(tmp_path / "r", stages, ("connect", "remote", "guest"), None, {})
    assert summary.exit_status == 2 and summary.result == "MISS"


def test_an_exception_of_the_target_is_recorded_as_its_stage(tmp_path):
    target, stages = Recorded(OSError(28, "No space left on device")), []
    with pytest.raises(Exception):
        run_on(target, stages, True, None, 60)
    assert stages[-1].name == "remote" and stages[-1].status == MISSED and "no space left" in stages[-1].message
    assert target.closed == 1


def test_an_unreadable_kernel_log_makes_the_splat_check_an_error(tmp_path):
    stages: list[StageResult] = []
    judged = judge("remote", ran(tmp_path, kernel_log=None, kernel_log_problem="dmesg exit 1: Operation not "
                                 "permitted"), stages, True, None, 60)
    assert not judged.scanned and "dmesg exit 1" in judged.unscanned
    summary = report(tmp_path / "r", stages, (), judged, {})
    (check,) = summary.console
    assert check.status == ERROR and "no splat check was possible: dmesg exit 1" in check.message
    assert summary.exit_status == 2 and summary.result == "ERROR"


def test_a_suite_that_returned_no_status_is_the_guest_stages_error_unless_the_kernel_panicked(tmp_path):
    stages: list[StageResult] = []
    judge("boot", ran(tmp_path, status=None, junit=None), stages, True, None, 60)
    assert [(s.name, s.status) for s in stages] == [("boot", PASSED), ("guest", ERROR)]
    stages = []
    panic = (DATA / "console-panic.log").read_text()
    judge("boot", ran(tmp_path, status=None, junit=None, kernel_log=panic), stages, True, None, 60)
    assert stages[-1].status == FAILED and "panicked" in stages[-1].message
    stages = []     # a bare command (isolharness exec) has no guest stage: its boot stage fails
    judge("boot", ran(tmp_path, status=None, junit=None), stages, False, None, 60)
    assert stages == [stages[0]] and stages[0].status == FAILED and "no exit status" in stages[0].message


def test_an_untrusted_run_reports_nothing_it_showed(tmp_path):
    stages: list[StageResult] = []
    judged = judge("boot", ran(tmp_path, untrusted="the guest booted another kernel"), stages, True, None, 60)
    assert stages[-1].status == MISSED and judged.guest_junit is None and not judged.scanned and not judged.unscanned


def test_a_bisect_step_that_hits_a_bug_of_the_harness_aborts_the_bisect(monkeypatch, capsys):
    def broken(workdir):
        raise ValueError("a bug of ours")

    monkeypatch.setattr(bisect, "run_step", broken)
    assert bisect.main(["step", "/nonexistent"]) == bisect.ABORT   # never 1, "bad", for the commit
    assert "a bug of ours" in capsys.readouterr().err


def test_a_kernel_that_died_before_its_kunit_tests_fails_it_is_no_missing_suite(tmp_path):
    """A panic before the guest command (here: no root file system) is the
    kernel's failure, exit 1; its KUnit suites are not also reported
    missing (that would make it an ERROR, and a bisect would abort)."""
    stages: list[StageResult] = []
    panic = (DATA / "console-panic.log").read_text()
    judged = judge("boot", ran(tmp_path, status=None, junit=None, kernel_log=panic, reached_command=False),
                   stages, True, None, 60, (KunitCollection(tmp_path, ("block_interf",)),))
    assert stages[-1].status == FAILED and judged.collected == []
    assert report(tmp_path / "r", stages, (), judged, {}).exit_status == 1
