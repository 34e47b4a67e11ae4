"""Stage outcomes and the exit status they map to.

Exit status of every isolharness command:

* 0 -- everything ran and passed;
* 1 -- the code under test failed: a patch does not apply, the kernel does
  not build, the guest panicked, hung or splatted, or a guest test failed;
* 2 -- the harness or its environment failed: a bad argument, a missing
  tool, a broken config fragment, no disk space, QEMU that will not start.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2

PASSED = "passed"
FAILED = "failed"     # the code under test failed
ERROR = "error"       # the harness or environment failed
SKIPPED = "skipped"   # not reached because an earlier stage stopped the run


@dataclass
class StageResult:
    name: str
    status: str
    duration: float = 0.0
    message: str = ""
    detail: str = ""


def exit_status(statuses: list[str]) -> int:
    """Map every testcase status of a run (stages, splats, guest tests) to
    the run's exit status: an error outranks a failure."""
    if ERROR in statuses:
        return EXIT_ERROR
    if FAILED in statuses:
        return EXIT_FAILED
    if PASSED not in statuses:
        return EXIT_ERROR  # nothing ran at all
    return EXIT_OK
