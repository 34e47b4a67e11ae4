"""The mutation runner's verdicts (tests/mutation.py), from JUnit files
shaped as a check writes them."""

from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml, TestCase, TestSuite

import mutation

PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Someone <someone@example.invalid>
Subject: [PATCH] mutant: something

Breaks: INTERFACE.md: a rule
Killed-by: tests/guest/test_x.py::test_a
Killed-by: tests/guest/test_y.py::test_b[2]
---
 f.c | 2 +-
"""


def junit(path: Path, failed: list[tuple[str, str]], passed: list[tuple[str, str]], stage_failed: str = "") -> JUnitXml:
    xml = JUnitXml("isolharness")
    stages = TestSuite("isolharness.stages")
    for name in ("prepare", "config", "build", "boot"):
        case = TestCase(name, classname="isolharness.stages")
        if name == stage_failed:
            case.result = [Failure("it broke")]
        stages.add_testcase(case)
    xml.add_testsuite(stages)
    guest = TestSuite("pytest")
    for classname, name in failed + passed:
        case = TestCase(name, classname=classname)
        if (classname, name) in failed:
            case.result = [Failure("assert")]
        guest.add_testcase(case)
    xml.add_testsuite(guest)
    xml.write(str(path))
    return JUnitXml.fromfile(str(path))


@pytest.fixture
def mutant(tmp_path):
    path = tmp_path / "01-something.patch"
    path.write_text(PATCH)
    return mutation.load_mutant(path)


def test_trailers_are_read(mutant):
    assert mutant.name == "01-something" and mutant.breaks == "INTERFACE.md: a rule"
    assert mutant.killed_by == ("tests/guest/test_x.py::test_a", "tests/guest/test_y.py::test_b[2]")


def test_a_patch_without_trailers_is_refused(tmp_path):
    path = tmp_path / "02-bare.patch"
    path.write_text(PATCH.replace("Killed-by", "Seen-by"))
    with pytest.raises(mutation.MutantError, match="Killed-by"):
        mutation.load_mutant(path)


def test_killed_when_every_named_test_fails(mutant, tmp_path):
    # any instance of an unparametrized name; the exact instance of a parametrized one
    xml = junit(tmp_path / "j.xml", [("tests.guest.test_x", "test_a[empty]"), ("test_y", "test_b[2]")],
                [("tests.guest.test_x", "test_a[full]")])
    assert mutation.judge(mutant, 1, xml)[0] == mutation.KILLED


def test_a_named_test_that_passed_is_reported(mutant, tmp_path):
    xml = junit(tmp_path / "j.xml", [("test_x", "test_a"), ("test_y", "test_b[1]"), ("test_z", "test_c")],
                [("test_y", "test_b[2]")])
    status, failed, missed, reason = mutation.judge(mutant, 1, xml)
    assert status == mutation.KILLED_BY_OTHERS and missed == ("tests/guest/test_y.py::test_b[2]",)
    assert "test_z::test_c" in failed


def test_exit_0_is_a_survivor_and_a_build_failure_is_invalid(mutant, tmp_path):
    assert mutation.judge(mutant, 0, None)[0] == mutation.SURVIVED
    xml = junit(tmp_path / "j.xml", [], [], stage_failed="build")
    assert mutation.judge(mutant, 1, xml)[0] == mutation.INVALID
    assert mutation.judge(mutant, 2, xml)[0] == mutation.INVALID


def test_the_shipped_mutants_load():
    assert len(mutation.load_mutants()) >= 15
