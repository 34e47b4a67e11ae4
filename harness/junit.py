"""Stage 6 (report, writing): one JUnit XML for the whole run.

Suites: ``isolharness.stages`` (prepare, config, build, boot, each with its
duration and the run's properties), ``isolharness.console`` (one testcase
per kernel splat, or one passing check when there is none), then the guest
pytest suites as pytest wrote them.
"""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Properties, Property, Skipped, TestCase, TestSuite

from .console import Splat
from .outcome import ERROR, FAILED, MISSED, SKIPPED, StageResult

STAGES_SUITE = "isolharness.stages"
CONSOLE_SUITE = "isolharness.console"
NO_SPLAT_CASE = "no kernel splat on the console"
# An error of the environment, not of the test (KernelCI's MISS): the
# error's type and a testcase property.
INFRA = "infra"


def case_of(name: str, classname: str, result=None, message: str = "", text: str = "") -> TestCase:
    """A testcase, passed or with one ``result`` (Failure, Error, Skipped)."""
    case = TestCase(name, classname=classname)
    if result is not None:
        res = result(message)
        res.text = text
        case.result = [res]
    return case


def suite_of(name: str, cases: list[TestCase]) -> TestSuite:
    """A suite of these testcases, its counts up to date."""
    suite = TestSuite(name)
    for case in cases:
        suite.add_testcase(case)
    suite.update_statistics()
    return suite


def stage_case(stage: StageResult) -> TestCase:
    case = TestCase(stage.name, classname=STAGES_SUITE, time=round(stage.duration, 3))
    if stage.status == FAILED:
        res = Failure(stage.message)
        res.text = stage.detail
        case.result = [res]
    elif stage.status in (ERROR, MISSED):
        res = Error(stage.message, type_=INFRA if stage.status == MISSED else None)
        res.text = stage.detail
        case.result = [res]
        if stage.status == MISSED:
            props = Properties()
            props.add_property(Property(INFRA, "true"))
            case.append(props)
    elif stage.status == SKIPPED:
        case.result = [Skipped(stage.message)]
    if stage.detail and stage.status not in (FAILED, ERROR, MISSED):
        case.system_out = stage.detail
    return case


def splat_cases(splats: list[Splat], scanned: bool, unscanned: str = "") -> list[TestCase]:
    """The splat check: a testcase per splat, or one passing check; an
    error of the check when the kernel log could not be read (``unscanned``
    says why), nothing when it was not to be read (an untrusted boot)."""
    if not scanned:
        if not unscanned:
            return []
        case = TestCase(NO_SPLAT_CASE, classname=CONSOLE_SUITE)
        case.result = [Error(f"no splat check was possible: {unscanned}")]
        return [case]
    if not splats:
        return [TestCase(NO_SPLAT_CASE, classname=CONSOLE_SUITE)]
    cases = []
    for n, s in enumerate(splats, 1):
        case = TestCase(f"splat {n}: {s.kind}: {s.title[:120]}", classname=CONSOLE_SUITE)
        res = Failure(f"kernel {s.kind} at console line {s.line}: {s.title[:200]}", type_=s.kind)
        res.text = s.report
        case.result = [res]
        cases.append(case)
    return cases


def build_junit(stages: list[StageResult], splats: list[Splat], scanned: bool,
                properties: dict[str, str], guest_xml: Path | None, unscanned: str = "",
                extra: list[TestSuite] | tuple = ()) -> JUnitXml:
    xml = JUnitXml("isolharness")
    host = TestSuite(STAGES_SUITE)
    for key, value in properties.items():
        host.add_property(key, value)
    for stage in stages:
        host.add_testcase(stage_case(stage))
    host.update_statistics()
    xml.add_testsuite(host)
    cases = splat_cases(splats, scanned, unscanned)
    if cases:
        xml.add_testsuite(suite_of(CONSOLE_SUITE, cases))
    for suite in extra:
        xml.add_testsuite(suite)
    if guest_xml is not None and guest_xml.is_file():
        guest = JUnitXml.fromfile(str(guest_xml))
        suites = [guest] if isinstance(guest, TestSuite) else list(guest)
        for suite in suites:
            xml.add_testsuite(suite)
    xml.update_statistics()
    return xml


def write_junit(xml: JUnitXml, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
