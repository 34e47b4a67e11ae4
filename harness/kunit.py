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

import importlib.util
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Error, Failure, Skipped, TestCase, TestSuite

from .junit import case_of, suite_of

PARSER = Path("tools/testing/kunit/kunit_parser.py")
SUITE_PREFIX = "kunit."
LOG_LINES = 40
PANIC = re.compile(r"Kernel panic - not syncing: .*")
_OOPS = re.compile(r"(?:BUG: .*|Oops: .*)")


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
    """The tree's kunit_parser module, printing nowhere. It imports
    kunit_printer from beside it: that one is the tree's too, never one an
    earlier load left in sys.modules."""
    path = tree / PARSER
    if not path.is_file():
        raise FileNotFoundError(f"{tree} has no {PARSER}: its KTAP cannot be parsed")
    where = str(path.parent)
    name = "isolharness_kunit_parser"
    sys.path.insert(0, where)
    sys.modules.pop("kunit_printer", None)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        sys.modules[name] = module      # its dataclasses look their module up there
        spec.loader.exec_module(module)
        printer = sys.modules.get("kunit_printer")
        if printer is not None and hasattr(printer, "Printer"):
            module.stdout = printer.Printer(io.StringIO())
    finally:
        sys.path.remove(where)
        sys.modules.pop(name, None)
        sys.modules.pop("kunit_printer", None)
    return module


def _case(suite: str, name: str, message: str, text: str = "", failure: bool = False) -> TestCase:
    """A testcase with one error (the harness could not judge) or, with
    ``failure``, one failure (the kernel's fault: it crashed)."""
    return case_of(name, f"{SUITE_PREFIX}{suite}", Failure if failure else Error, message, text)


def _suite(name: str, cases: list[TestCase]) -> TestSuite:
    return suite_of(f"{SUITE_PREFIX}{name}", cases)


def _cases(parser, test, classname: str, prefix: str = "") -> list[TestCase]:
    """JUnit testcases of a KUnit suite's cases; parameterised cases keep
    their parameters as name/param. The parser's placeholders for results
    that never came (no name) are left out: the suite's own case says the
    stream was cut."""
    status = parser.TestStatus
    out = []
    for sub in test.subtests:
        if not sub.name:
            continue
        name = f"{prefix}{sub.name}"
        if sub.subtests:
            out.extend(_cases(parser, sub, classname, f"{name}/"))
            continue
        case = TestCase(name, classname=classname)
        log = "\n".join(sub.log[-LOG_LINES:])
        if sub.status == status.SUCCESS:
            pass
        elif sub.status == status.SKIPPED:
            case.result = [Skipped("skipped")]
        else:
            # Failed, or crashed (KUnit's "try faulted"): the kernel's.
            first = next((ln.strip() for ln in sub.log if "EXPECTATION FAILED" in ln or "ASSERTION FAILED" in ln
                          or "faulted" in ln), f"KUnit case {sub.status.name.lower().replace('_', ' ')}")
            res = Failure(first)
            res.text = log
            case.result = [res]
        out.append(case)
    return out


def parse(kernel_log: str, tree: Path, expected: tuple[str, ...]) -> list[TestSuite]:
    """The JUnit suites of the KUnit results in ``kernel_log``; nothing when
    there are none and none is expected. Never raises: a parser that cannot
    be loaded or fails is an error case of its own."""
    lines = kernel_log.splitlines()
    has_ktap = any("KTAP version" in ln or "TAP version" in ln for ln in lines)
    if not expected and not has_ktap:
        return []
    try:
        return _translate(load_parser(tree), kernel_log, lines, has_ktap, expected)
    except Exception as exc:  # the tree's parser: missing, or not the API this reads
        why = str(exc) if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}"
        return [_suite("(parser)", [_case("(parser)", "KTAP parser", why)])]


def _translate(parser, kernel_log: str, lines: list[str], has_ktap: bool,
               expected: tuple[str, ...]) -> list[TestSuite]:
    top = parser.parse_run_tests(lines)
    crashed = parser.TestStatus.TEST_CRASHED
    panic = PANIC.search(kernel_log) or _OOPS.search(kernel_log)
    # A stream cut while the kernel crashed is the kernel's failure; one
    # cut for no reason the log shows is an error of the run.
    cut = f": {panic.group(0)}" if panic else " (for no reason the kernel log shows: cut off?)"
    suites, seen = [], set()
    for sub in top.subtests:
        if not sub.name:
            continue
        seen.add(sub.name)
        cases = _cases(parser, sub, f"{SUITE_PREFIX}{sub.name}")
        if sub.status == crashed:
            cases.append(_case(sub.name, "(suite)", f"the KTAP stream of {sub.name} ended before its results{cut}",
                               "\n".join(sub.log[-LOG_LINES:]), failure=panic is not None))
        suites.append(_suite(sub.name, cases))
    if not seen and has_ktap:
        suites.append(_suite("(stream)", [_case("(stream)", "KTAP stream", f"the KTAP stream ended before its first "
                                                f"suite{cut}", failure=panic is not None)]))
    for name in expected:
        if name not in seen:
            suites.append(_suite(name, [_case(name, "(suite)", f"KUnit suite {name} expected but absent from the "
                                              f"kernel log: the kernel does not have it, or it did not run")]))
    return suites
