"""KUnit tests built into the kernel under test, run at boot: their KTAP
output is read from the kernel log and parsed with the tree's own
tools/testing/kunit/kunit_parser.py, each KUnit suite becoming a JUnit suite
``kunit.<name>`` beside the guest's.

A series names the KUnit suites it ships in ``patches/<series>/kunit`` (one
per line); when that series is applied or expected, each must be in the
kernel log. One that is absent is an ERROR ("expected but absent": on the
unpatched kernel the tests do not exist, which is no skip). A crashed or
cut-off KTAP stream (a panic in a test) is an ERROR naming the last test
and, when there is one, the panic line; a failed KUnit case is a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Error, Failure, Skipped, TestCase, TestSuite

PARSER = Path("tools/testing/kunit/kunit_parser.py")
SUITE_PREFIX = "kunit."
LOG_LINES = 40
_PANIC = re.compile(r"Kernel panic - not syncing: .*")


@dataclass(frozen=True)
class KunitResults:
    suites: list[TestSuite] = field(default_factory=list)


def expected_suites(patches_dir: Path, series: tuple[str, ...]) -> tuple[str, ...]:
    """The KUnit suites the series declare (patches/<series>/kunit)."""
    out: list[str] = []
    for name in series:
        listing = patches_dir / name / "kunit"
        if listing.is_file():
            out.extend(line.split("#", 1)[0].strip() for line in listing.read_text().splitlines())
    return tuple(dict.fromkeys(s for s in out if s))


def load_parser(tree: Path):
    """The tree's kunit_parser module (it imports kunit_printer beside it)."""
    path = tree / PARSER
    if not path.is_file():
        raise FileNotFoundError(f"{tree} has no {PARSER}: its KTAP cannot be parsed")
    where = str(path.parent)
    sys.path.insert(0, where)
    try:
        spec = importlib.util.spec_from_file_location("isolharness_kunit_parser", path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        # Its dataclasses look their module up in sys.modules.
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[spec.name]
            raise
    finally:
        sys.path.remove(where)
    return module


def _error_case(suite: str, name: str, message: str, text: str = "") -> TestCase:
    case = TestCase(name, classname=f"{SUITE_PREFIX}{suite}")
    res = Error(message)
    res.text = text
    case.result = [res]
    return case


def _cases(parser, test, classname: str, prefix: str = "") -> list[TestCase]:
    """JUnit testcases of a KUnit suite's cases; parameterised cases keep
    their parameters as name/param."""
    status = parser.TestStatus
    out = []
    for sub in test.subtests:
        name = f"{prefix}{sub.name}"
        if sub.subtests:
            out.extend(_cases(parser, sub, classname, f"{name}/"))
            continue
        case = TestCase(name, classname=classname)
        log = "\n".join(sub.log[-LOG_LINES:])
        if sub.status == status.FAILURE:
            res = Failure(next((ln.strip() for ln in sub.log if "EXPECTATION FAILED" in ln
                                or "ASSERTION FAILED" in ln), "KUnit case failed"))
            res.text = log
            case.result = [res]
        elif sub.status == status.SKIPPED:
            case.result = [Skipped("skipped")]
        elif sub.status != status.SUCCESS:
            res = Error(f"KUnit case {sub.status.name.lower().replace('_', ' ')}")
            res.text = log
            case.result = [res]
        out.append(case)
    return out


def parse(kernel_log: str, tree: Path, expected: tuple[str, ...]) -> list[TestSuite]:
    """The JUnit suites of the KUnit results in ``kernel_log``; nothing when
    there are none and none is expected."""
    lines = kernel_log.splitlines()
    if not expected and not any("KTAP version" in ln for ln in lines):
        return []
    try:
        parser = load_parser(tree)
        with contextlib.redirect_stdout(io.StringIO()):
            top = parser.parse_run_tests(lines)
    except Exception as exc:  # the tree's parser: missing, or broken in that tree
        suite = TestSuite(f"{SUITE_PREFIX}(parser)")
        suite.add_testcase(_error_case("(parser)", "KTAP parser", f"{type(exc).__name__}: {exc}"
                                       if not isinstance(exc, FileNotFoundError) else str(exc)))
        return [suite]
    crashed = parser.TestStatus.TEST_CRASHED
    panic = _PANIC.search(kernel_log)
    cut = f": {panic.group(0)}" if panic else " (crashed, or the log was cut off)"
    suites = []
    seen = set()
    for sub in top.subtests:
        seen.add(sub.name)
        suite = TestSuite(f"{SUITE_PREFIX}{sub.name}")
        for case in _cases(parser, sub, f"{SUITE_PREFIX}{sub.name}"):
            suite.add_testcase(case)
        if sub.status == crashed:
            suite.add_testcase(_error_case(sub.name, "(suite)", f"the KTAP stream of {sub.name} ended before "
                                           f"its result{cut}", "\n".join(sub.log[-LOG_LINES:])))
        suite.update_statistics()
        suites.append(suite)
    if not top.subtests and any("KTAP version" in ln for ln in lines):
        suite = TestSuite(f"{SUITE_PREFIX}(stream)")
        suite.add_testcase(_error_case("(stream)", "KTAP stream", f"the KTAP stream ended before its first "
                                       f"result{cut}"))
        suites.append(suite)
    for name in expected:
        if name not in seen:
            suite = TestSuite(f"{SUITE_PREFIX}{name}")
            suite.add_testcase(_error_case(name, "(suite)", f"KUnit suite {name} expected but absent from the "
                                           f"kernel log: the kernel does not have it, or it did not run"))
            suite.update_statistics()
            suites.append(suite)
    return suites
