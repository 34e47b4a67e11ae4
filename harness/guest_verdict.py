"""The guest stage's verdict: whether the guest test suite really ran.

One rule for every target (the VM, an SSH machine): the guest pytest's exit
status and its JUnit file are checked against each other before any of its
testcases count. A run that tested nothing is never a pass:

* no JUnit file, or one that cannot be read (pytest killed while writing
  it), or one with no testcase: ERROR;
* ``-k`` that selects nothing (pytest exit 5): ERROR saying so;
* pytest exit 0 with a failing testcase, or exit 1 with none: ERROR (the
  two disagree, so neither can be trusted);
* any other pytest status (2 interrupted, 3 internal error, 4 usage error,
  e.g. a conftest that does not import): ERROR with the output's tail;
* the guest died without a status while its kernel panicked: FAILED, the
  kernel's fault (the splat check shows the panic).

Otherwise the stage passes and the testcases carry the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, TestSuite

from .outcome import ERROR, FAILED, PASSED, StageResult

STAGE = "guest"
OUTPUT_TAIL_LINES = 40
NO_TESTS_COLLECTED = 5
_EXIT_MEANING = {2: "interrupted", 3: "internal error", 4: "usage error (a conftest or option pytest could not "
                 "load)", NO_TESTS_COLLECTED: "no test collected"}


@dataclass(frozen=True)
class GuestCount:
    cases: int
    failing: int        # failures and errors


def count_cases(junit: Path) -> GuestCount:
    """Testcases of a pytest JUnit file. Raises on a file that is not one."""
    xml = JUnitXml.fromfile(str(junit))
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    cases = failing = 0
    for suite in suites:
        for case in suite:
            cases += 1
            if any(isinstance(r, (Failure, Error)) for r in case.result):
                failing += 1
    return GuestCount(cases, failing)


def output_tail(output: Path | None, lines: int = OUTPUT_TAIL_LINES) -> str:
    if output is None or not output.is_file():
        return "(no guest output was saved)"
    text = output.read_text(errors="replace").splitlines()
    return "guest output, last lines:\n" + "\n".join(text[-lines:])


def judge_guest(status: int | None, junit: Path | None, output: Path | None, select: str | None,
                duration: float = 0.0, panicked: bool = False) -> tuple[StageResult, bool]:
    """The guest stage, and whether the JUnit file's testcases may be
    reported. ``status`` is the guest pytest's exit status as the target
    returned it (None: no status came back)."""
    res = StageResult(STAGE, PASSED, duration)

    def error(message: str) -> tuple[StageResult, bool]:
        res.status, res.message, res.detail = ERROR, message, output_tail(output)
        return res, False

    if status is None or (status not in (0, 1) and panicked):
        if panicked:
            res.status, res.message = FAILED, "the guest kernel panicked before the test suite returned"
            res.detail = output_tail(output)
            return res, junit is not None and _readable(junit)
        return error("the guest returned no exit status for the test suite")
    if status == NO_TESTS_COLLECTED:
        if select:
            return error(f"-k {select!r} selected no guest test: nothing was tested")
        return error("the guest test suite collected no test: nothing was tested")
    if junit is None or not junit.is_file():
        why = _EXIT_MEANING.get(status, f"exit {status}")
        return error(f"the guest test suite wrote no JUnit file (pytest {why}): nothing can be reported")
    try:
        count = count_cases(junit)
    except Exception as exc:  # junitparser raises lxml / ElementTree errors
        return error(f"the guest JUnit file {junit.name} cannot be read ({type(exc).__name__}: {exc}); "
                     f"pytest exit {status}")
    if status not in (0, 1):
        why = _EXIT_MEANING.get(status, "unexpected status")
        return error(f"the guest test suite exited {status} ({why}) after {count.cases} testcase(s)")
    if count.cases == 0:
        return error("the guest JUnit file holds no testcase: nothing was tested")
    if status == 1 and count.failing == 0:
        return error("the guest test suite exited 1 but no testcase failed: the run cannot be trusted")
    if status == 0 and count.failing:
        return error(f"the guest test suite exited 0 with {count.failing} failing testcase(s)")
    res.message = f"{count.cases} testcase(s), pytest exit {status}"
    return res, True


def _readable(junit: Path) -> bool:
    try:
        count_cases(junit)
    except Exception:
        return False
    return True
