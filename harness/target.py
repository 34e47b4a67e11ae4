"""Where the guest command runs, and the one verdict on what came back.

A Target is the virtme-ng VM (harness/vm.py, VmTarget) or a machine over
SSH (harness/remote.py, SshTarget). Each opens (the VM: nothing; SSH:
connect and upload, each a stage of its own), runs one command under a
timeout, and hands back a Ran: the command's status, its output, the guest
JUnit file and the kernel's log of the run; ``close`` runs whatever
happened. ``run_on`` drives a target and judges the Ran the same way for
every target: the run stage (judge_run), the splat scan of the kernel log,
and the guest stage's cross-check of status and JUnit file (guest_verdict).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NoReturn, Protocol, TypeVar

from .collection import TestCollection
from .console import Splat, scan
from .errors import HarnessError, as_harness_error
from .guest_verdict import judge_guest
from .identity import KernelIdentity
from .outcome import ERROR, FAILED, MISSED, PASSED, StageResult

T = TypeVar("T")
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


@dataclass(frozen=True)
class Ran:
    """What a target hands back for one command."""
    status: int | None              # the command's exit status; None: none came back
    timed_out: bool                 # killed at the deadline
    duration: float
    output: Path                    # the command's output, saved on the host
    junit: Path | None              # the guest JUnit file on the host, None if none came back
    kernel_log: str | None          # the kernel's log of the run; None: it cannot be read
    kernel_log_problem: str = ""    # why it cannot be read
    started: bool = True            # the kernel started (the VM: a banner on the console)
    start_problem: str = ""         # why it did not
    reached_command: bool = True    # the command started (its first line came back)
    identity: KernelIdentity | None = None   # what the running kernel said of itself
    untrusted: str = ""             # why nothing this run showed is a verdict on the kernel built
    description: str = ""           # for the run stage's message ("accelerator tcg")
    log_tail: str = ""              # the last lines of the kernel log, for messages


class Target(Protocol):
    stage: str                      # the stage that runs the command: "boot", "remote"
    setup_stages: tuple[str, ...]   # stages open() records before it
    collections: tuple[TestCollection, ...]   # the kernel's own tests, beside the suite (harness/collection.py)

    def open(self, stages: list[StageResult]) -> None:
        """Set up; records its set-up stages, raises after a failed one."""

    def run(self, suite: bool, timeout: float) -> Ran:
        """Run the guest test suite (or, with ``suite`` false, the target's
        command) with a deadline of ``timeout`` seconds."""

    def close(self) -> None:
        """Undo what open() and run() left, whatever happened; idempotent."""


@dataclass(frozen=True)
class Judged:
    ran: Ran | None
    splats: list[Splat]
    scanned: bool                   # the kernel log was read and scanned
    unscanned: str                  # why not, when it was not ("" for an untrusted run)
    guest_junit: Path | None        # the guest testcases to report, when the guest stage trusts them
    collected: list = field(default_factory=list)   # JUnit suites of the test collections (KUnit, kselftests)


def fail_stage(name: str, stages: list[StageResult], start: float, exc: Exception) -> NoReturn:
    """Record the stage an exception stopped, and raise it as a HarnessError."""
    err = as_harness_error(exc)
    stages.append(StageResult(name, err.status, time.monotonic() - start, err.message, err.render()))
    if err is exc:
        raise err
    raise err from exc


def _nothing_failed(stages: list[StageResult]) -> bool:
    return not any(s.status in (ERROR, MISSED, FAILED) for s in stages)


def record_run_error(stages: list[StageResult], exc: Exception) -> HarnessError:
    """An exception no stage caught (a bug of ours between stages): the
    run's error, unless a stage already says what failed. Returned as the
    HarnessError to print."""
    err = as_harness_error(exc)
    if _nothing_failed(stages):
        stages.append(StageResult("harness", err.status, 0.0, err.message, err.render()))
    return err


def record_interrupt(stages: list[StageResult]) -> None:
    """An interrupted run tested nothing to its end: never a pass."""
    if _nothing_failed(stages):
        stages.append(StageResult("harness", MISSED, 0.0, INTERRUPTED))


def timed(name: str, stages: list[StageResult], fn: Callable[[], T], message: str = "") -> T:
    """Run one stage: its result is recorded however it ends, an interrupt
    included (MISS: the stage did not run to its end)."""
    start = time.monotonic()
    try:
        value = fn()
    except Exception as exc:
        fail_stage(name, stages, start, exc)
    except KeyboardInterrupt:
        stages.append(StageResult(name, MISSED, time.monotonic() - start, INTERRUPTED))
        raise
    stages.append(StageResult(name, PASSED, time.monotonic() - start, message))
    return value


def judge_run(stage: str, ran: Ran, timeout: float, suite: bool) -> StageResult:
    """The stage that ran the command, from what came back."""
    res = StageResult(stage, PASSED, ran.duration, ran.description)
    if ran.untrusted:
        # Whatever happened is no verdict on the kernel built: a kernel
        # other than it ran, or the command line was cut.
        res.status, res.message = MISSED, ran.untrusted
        res.detail = "The kernel log and the guest's results of this run are not reported.\n" + ran.log_tail
    elif ran.timed_out:
        res.status, res.message = FAILED, f"guest hung: killed by the watchdog after {timeout:.0f}s"
        res.detail = ran.log_tail
    elif not ran.started:
        res.status, res.message, res.detail = MISSED, ran.start_problem, ran.log_tail
    elif not ran.reached_command:
        res.status, res.message, res.detail = FAILED, "kernel did not reach the guest command", ran.log_tail
    elif ran.status is None and not suite:
        # A suite without a status is the guest stage's to judge; a bare
        # command has no other stage.
        res.status, res.message = FAILED, "guest died before the command finished (no exit status from the guest)"
        res.detail = ran.log_tail
    return res


def judge(stage: str, ran: Ran, stages: list[StageResult], suite: bool, select: str | None,
          timeout: float, collections: tuple[TestCollection, ...] = ()) -> Judged:
    """The run stage, the splat scan, (for the suite) the guest stage, and
    the suites of the test collections."""
    run = judge_run(stage, ran, timeout, suite)
    stages.append(run)
    if ran.untrusted:
        return Judged(ran, [], False, "", None)
    if ran.kernel_log is None:
        splats, scanned, unscanned = [], False, ran.kernel_log_problem or "the kernel log cannot be read"
    else:
        splats, scanned, unscanned = scan(ran.kernel_log), True, ""
    junit = None
    if suite and run.status == PASSED:
        guest, trusted = judge_guest(ran.status, ran.junit, ran.output, select,
                                     panicked=any(s.kind == "panic" for s in splats))
        stages.append(guest)
        junit = ran.junit if trusted else None
    collected = [s for c in collections for s in c.suites(ran, reached=run.status == PASSED)]
    return Judged(ran, splats, scanned, unscanned, junit, collected)


def run_on(target: Target, stages: list[StageResult], suite: bool, select: str | None, timeout: float) -> Judged:
    """Open the target, run, close it whatever happened, and judge."""
    try:
        target.open(stages)
        ran = timed_run(target, stages, suite, timeout)
    finally:
        target.close()
    return judge(target.stage, ran, stages, suite, select, timeout, target.collections)


def timed_run(target: Target, stages: list[StageResult], suite: bool, timeout: float) -> Ran:
    start = time.monotonic()
    try:
        return target.run(suite, timeout)
    except Exception as exc:
        fail_stage(target.stage, stages, start, exc)
    except KeyboardInterrupt:
        stages.append(StageResult(target.stage, MISSED, time.monotonic() - start, INTERRUPTED))
        raise
