"""KUnit results read from a boot's kernel log (harness/kunit.py), parsed
with the kernel's own tools/testing/kunit/kunit_parser.py, on consoles of
real guests: the series' suite passing, a mutant's crashing, and the kernel
without the series."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kunit
from harness.junit import build_junit
from harness.outcome import PASSED, StageResult
from harness.summary import summarize

DATA = Path(__file__).parent / "data"


def junit_of(suites, tmp_path):
    xml = build_junit([StageResult("boot", PASSED)], [], True, {}, None, "", suites)
    return summarize(xml)


def test_the_series_suite_passes_case_by_case(tree, tmp_path):
    log = (DATA / "console-kunit.log").read_text()
    suites = kunit.parse(log, tree, ("block_interf",))
    assert [s.name for s in suites] == ["kunit.block_interf"]
    s = junit_of(suites, tmp_path)
    cases = {g.name: g.status for g in s.guest}
    assert cases["block_interf_cpu_names_cpus_only"] == "passed"
    assert cases["queue_work_on_fail_passes_unbound_on"] == "passed"
    assert cases["stop_machine_fail_ignores_a_blocked_offline_cpu"] == "skipped"   # every CPU online
    assert len(cases) == 8 and s.exit_status == 0


def test_a_suite_expected_but_absent_is_an_error_not_a_skip(tree, tmp_path):
    log = (DATA / "console-clean.log").read_text()         # a kernel without the series
    suites = kunit.parse(log, tree, ("block_interf",))
    s = junit_of(suites, tmp_path)
    (case,) = s.guest
    assert case.suite == "kunit.block_interf" and case.status == "error"
    assert "expected but absent" in case.message and s.exit_status == 2
    assert kunit.parse(log, tree, ()) == []                 # nothing expected, nothing there: nothing


def test_a_crashing_case_fails_and_the_console_says_why(tree, tmp_path):
    log = (DATA / "console-kunit-crash.log").read_text()   # mutant 27: block_interf_cpu() unchecked
    s = junit_of(kunit.parse(log, tree, ("block_interf",)), tmp_path)
    bad = {g.name: g for g in s.guest if g.status not in ("passed", "skipped")}
    assert "block_interf_cpu_names_cpus_only" in bad, [(g.name, g.status) for g in s.guest]
    assert s.exit_status != 0


def test_a_tree_without_the_parser_is_an_error_saying_so(tmp_path):
    log = (DATA / "console-kunit.log").read_text()
    (suite,) = kunit.parse(log, tmp_path, ("block_interf",))
    (case,) = list(suite)
    assert "has no tools/testing/kunit/kunit_parser.py" in case.result[0].message


def test_a_series_lists_its_suites(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "kunit").write_text("# comment\nsuite_one\n\nsuite_two  # why\n")
    assert kunit.expected_suites(tmp_path, ("a", "b")) == ("suite_one", "suite_two")
    project = Path(__file__).resolve().parents[2] / "patches"
    assert kunit.expected_suites(project, ("block-interf",)) == ("block_interf",)


def test_parse_re_judges_saved_ktap(tree, tmp_path, capsys):
    from harness.cli import main

    args = ["parse", str(DATA / "console-kunit.log"), "--kunit-tree", str(tree), "--kunit-suite", "block_interf",
            "--results", str(tmp_path / "r")]
    assert main(args) == 0
    assert "kunit.block_interf" in (tmp_path / "r" / "junit.xml").read_text()
    assert main(["parse", str(DATA / "console-clean.log"), "--kunit-tree", str(tree), "--kunit-suite",
                 "block_interf", "--results", str(tmp_path / "r")]) == 2
    assert main(["parse", str(DATA / "console-clean.log"), "--kunit-suite", "x",
                 "--results", str(tmp_path / "r")]) == 2
    assert "--kunit-suite and --kselftest-dir need --kunit-tree" in capsys.readouterr().err
