import json
from dataclasses import asdict
from pathlib import Path

from harness.console import Splat
from harness.junit import build_junit, write_junit
from harness.outcome import ERROR, FAILED, MISSED, PASSED, SKIPPED, StageResult
from harness.summary import load, render

GUEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="guest" errors="1" failures="1" skipped="1" tests="4" time="1.5">
<testcase classname="tests.guest.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.guest.test_a" name="test_bad" time="0.2"><failure message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.guest.test_a" name="test_fixture" time="0.2"><error message="fixture broke">trace</error></testcase>
<testcase classname="tests.guest.test_a" name="test_skip" time="0.0"><skipped message="absent"/></testcase>
</testsuite></testsuites>
"""


def stages(*statuses):
    names = ["prepare", "config", "build", "boot"]
    return [StageResult(n, s, 1.5, "msg" if s != PASSED else "") for n, s in zip(names, statuses)]


def roundtrip(tmp_path: Path, st, splats=(), guest=None):
    guest_path = None
    if guest:
        guest_path = tmp_path / "guest.xml"
        guest_path.write_text(guest)
    xml = build_junit(st, list(splats), True, {"accelerator": "tcg (requested)", "series": "none"}, guest_path)
    write_junit(xml, tmp_path / "junit.xml")
    return load(tmp_path)


def test_all_green(tmp_path):
    s = roundtrip(tmp_path, stages(PASSED, PASSED, PASSED, PASSED))
    assert s.exit_status == 0
    assert [c.name for c in s.stages] == ["prepare", "config", "build", "boot"]
    assert s.properties["accelerator"] == "tcg (requested)"
    assert "verdict: PASS, exit status 0" in render(s)


def test_guest_failure_and_error_count_as_failed_tests(tmp_path):
    s = roundtrip(tmp_path, stages(PASSED, PASSED, PASSED, PASSED), guest=GUEST_XML)
    assert s.exit_status == 1
    assert s.counts == {"passed": 1, "failed": 2, "skipped": 1}
    text = render(s)
    assert "1 passed, 2 failed, 1 skipped" in text and "test_bad" in text


def test_splat_fails_green_run(tmp_path):
    splat = Splat("warning", 10, "WARNING: CPU: 1 PID: 2 at x.c:3 f+0x1/0x2", "WARNING: ...\nCall Trace:\n")
    s = roundtrip(tmp_path, stages(PASSED, PASSED, PASSED, PASSED), [splat])
    assert s.exit_status == 1
    assert "1 kernel splat(s)" in render(s)


def test_harness_error_outranks_failure(tmp_path):
    s = roundtrip(tmp_path, stages(PASSED, ERROR, SKIPPED, SKIPPED))
    assert s.exit_status == 2
    s = roundtrip(tmp_path, stages(PASSED, PASSED, FAILED, SKIPPED))
    assert s.exit_status == 1


def test_build_errors_are_the_compiler_lines_not_the_log():
    from harness.build import extract_errors

    # Recorded from a real failed build of this project's series (a new
    # header that git had not committed).
    lines = (Path(__file__).parent / "data" / "build-fail.log").read_text().splitlines()
    assert len(lines) > 50
    text = extract_errors(lines)
    assert "kernel/entry/common.c:6:10: fatal error: linux/task_isolation.h: No such file or directory" in text
    assert "^~~~" in text  # gcc's caret line comes along
    assert "CC      " not in text
    assert len(text.splitlines()) <= 41


def test_build_errors_keep_gccs_source_excerpt():
    from harness.build import extract_errors

    # Recorded from the e2e series run whose second patch does not compile:
    # gcc's " 2970 | int ... = ;" excerpt must not pass for a Kbuild line.
    lines = (Path(__file__).parent / "data" / "build-fail-excerpt.log").read_text().splitlines()
    text = extract_errors(lines)
    assert "error: expected expression before" in text
    assert "int isolharness_e2e_broken = ;" in text


def test_the_kernelci_vocabulary_survives_the_junit_file(tmp_path):
    # FAIL: the code under test; ERROR: the test or harness; MISS: the
    # environment (an error of type infra with the property infra=true).
    s = roundtrip(tmp_path, stages(PASSED, PASSED, MISSED, SKIPPED))
    assert [c.result for c in s.stages] == ["PASS", "PASS", "MISS", "SKIP"]
    assert s.result == "MISS" and s.exit_status == 2 and "verdict: MISS, exit status 2" in render(s)
    xml = (tmp_path / "junit.xml").read_text()
    assert 'type="infra"' in xml and '<property name="infra" value="true"' in xml
    s = roundtrip(tmp_path, stages(PASSED, PASSED, PASSED, ERROR))
    assert s.result == "ERROR" and s.stages[-1].result == "ERROR" and 'type="infra"' not in \
        (tmp_path / "junit.xml").read_text()
    s = roundtrip(tmp_path, stages(PASSED, PASSED, PASSED, PASSED), guest=GUEST_XML)
    assert s.result == "FAIL" and {g.result for g in s.guest} == {"PASS", "FAIL", "SKIP"}
    data = json.loads((tmp_path / "s.json").write_text(json.dumps(asdict(s))) and (tmp_path / "s.json").read_text())
    assert data["result"] == "FAIL" and data["guest"][0]["result"] == "PASS"
