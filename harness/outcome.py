"""Stage outcomes and the exit status they map to.

Exit status of every isolharness command:

* 0 -- everything ran and passed;
* 1 -- the code under test failed: a patch does not apply, the kernel does
  not build, the guest panicked, hung or splatted, or a guest test failed;
* 2 -- the harness or its environment failed: a bad argument, a missing
  tool, a broken config fragment, no disk space, QEMU that will not start.

Each testcase (stage, splat check, guest test) and the run as a whole also
carry KernelCI's word for it (kcidb-io schema v5): FAIL (the code under test
is faulty), ERROR (the test or the harness is faulty, the code's status is
unknown), MISS (the environment failed, so the test did not run: no space,
a missing tool, QEMU that did not start the kernel, the wrong kernel
booted), PASS, SKIP (not run, nothing learnt). In JUnit: failure, error,
error of type "infra" with the property infra=true, no result, skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2

PASSED = "passed"
FAILED = "failed"     # the code under test failed
ERROR = "error"       # the harness or the test is faulty
MISSED = "missed"     # the environment failed: the test did not run
SKIPPED = "skipped"   # not reached because an earlier stage stopped the run


@dataclass
class StageResult:
    name: str
    status: str
    duration: float = 0.0
    message: str = ""
    detail: str = ""


KCIDB = {FAILED: "FAIL", ERROR: "ERROR", MISSED: "MISS", PASSED: "PASS", SKIPPED: "SKIP"}


def run_result(statuses: list[str]) -> str:
    """The run's KernelCI word: an error or a miss outranks a failure (the
    run could not establish what it was to), and a run that passed nothing
    missed."""
    for status in (ERROR, MISSED, FAILED, PASSED):
        if status in statuses:
            return KCIDB[status]
    return KCIDB[MISSED]


def exit_status(statuses: list[str]) -> int:
    """Map every testcase status of a run (stages, splats, guest tests) to
    the run's exit status: an error outranks a failure."""
    if ERROR in statuses or MISSED in statuses:
        return EXIT_ERROR
    if FAILED in statuses:
        return EXIT_FAILED
    if PASSED not in statuses:
        return EXIT_ERROR  # nothing ran at all
    return EXIT_OK
