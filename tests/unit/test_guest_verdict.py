"""The guest stage: a run whose guest suite did not really run is an ERROR,
never a pass, and the exit status and JUnit file must agree."""

import errno

import pytest

from harness.errors import HarnessError, as_harness_error, environment_fault
from harness.guest_verdict import judge_guest
from harness.outcome import ERROR, FAILED, MISSED, PASSED

PASSING = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="guest" tests="2">
<testcase classname="tests.guest.test_smoke" name="test_a" time="0.1"/>
<testcase classname="tests.guest.test_smoke" name="test_b" time="0.1"/>
</testsuite></testsuites>"""
FAILING = PASSING.replace('name="test_b" time="0.1"/>', 'name="test_b" time="0.1"><failure message="no"/></testcase>')
EMPTY = '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="guest" tests="0"></testsuite></testsuites>'


@pytest.fixture
def files(tmp_path):
    out = tmp_path / "guest-output.log"
    out.write_text("\n".join(f"line {i}" for i in range(100)) + "\nImportError while loading conftest\n")

    def junit(text):
        path = tmp_path / "guest-junit.xml"
        if text is not None:
            path.write_text(text)
        return path if text is not None else None

    return junit, out


@pytest.mark.parametrize("status, xml, verdict, words", [
    (0, PASSING, PASSED, "2 testcase(s)"),
    (1, FAILING, PASSED, "pytest exit 1"),
    (4, None, ERROR, "wrote no JUnit file (pytest usage error"),          # conftest import error
    (2, None, ERROR, "wrote no JUnit file (pytest interrupted)"),
    (2, FAILING, ERROR, "exited 2 (interrupted)"),
    (5, EMPTY, ERROR, "collected no test"),
    (0, EMPTY, ERROR, "holds no testcase"),
    (0, PASSING[:120], ERROR, "cannot be read"),                           # cut off mid-write
    (1, PASSING, ERROR, "exited 1 but no testcase failed"),
    (0, FAILING, ERROR, "exited 0 with 1 failing"),
    (None, PASSING, ERROR, "no exit status"),
])
def test_verdicts(files, status, xml, verdict, words):
    junit, out = files
    res, report = judge_guest(status, junit(xml), out, None)
    assert res.status == verdict and words in res.message, res.message
    assert report == (verdict == PASSED)
    if verdict == ERROR:
        assert "ImportError while loading conftest" in res.detail and "line 59" not in res.detail


def test_a_selection_that_matches_nothing_says_so(files):
    junit, out = files
    res, report = judge_guest(5, junit(EMPTY), out, "no_such_test")
    assert res.status == ERROR and "-k 'no_such_test' selected no guest test" in res.message and not report


def test_a_panicked_guest_is_the_kernels_fault(files):
    junit, out = files
    res, report = judge_guest(None, junit(PASSING), out, None, panicked=True)
    assert res.status == FAILED and "panicked" in res.message and report


def test_environment_failures_are_named_and_bugs_are_the_harness(tmp_path):
    assert environment_fault("cc1: fatal error: foo.o: No space left on device") == "no space left on the device"
    assert environment_fault("error: all good") == ""
    err = as_harness_error(OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "x")))
    assert err.status == MISSED and "quota" in err.message and str(tmp_path) in err.message
    try:
        {}["missing"]
    except KeyError as exc:
        bug = as_harness_error(exc)
    assert bug.status == "error" and "internal error" in bug.message and "Traceback" in bug.detail
    same = HarnessError("x")
    assert as_harness_error(same) is same
