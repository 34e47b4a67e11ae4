"""isolharness parse: saved logs judged again with today's rules."""

from pathlib import Path

from test_guest_verdict import EMPTY, PASSING

from harness.cli import main

DATA = Path(__file__).parent / "data"


def test_a_saved_console_with_a_warning_is_red_again(tmp_path, capsys):
    assert main(["parse", str(DATA / "console-warning.log"), "--results", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "kernel splat" in out and "verdict: FAIL" in out and (tmp_path / "r" / "junit.xml").is_file()


def test_a_clean_console_and_a_passing_guest_are_green(tmp_path, capsys):
    junit = tmp_path / "guest-junit.xml"
    junit.write_text(PASSING)
    assert main(["parse", str(DATA / "console-clean.log"), str(junit), "--results", str(tmp_path / "r")]) == 0
    assert "2 passed" in capsys.readouterr().out


def test_a_guest_junit_without_testcases_is_an_error_now(tmp_path, capsys):
    # What an older harness reported as PASS.
    junit = tmp_path / "guest-junit.xml"
    junit.write_text(EMPTY)
    assert main(["parse", str(DATA / "console-clean.log"), str(junit), "--results", str(tmp_path / "r")]) == 2
    assert "holds no testcase" in capsys.readouterr().out
    assert main(["parse", str(DATA / "console-clean.log"), str(junit), "--status", "5",
                 "--results", str(tmp_path / "r")]) == 2
    assert "collected no test" in capsys.readouterr().out


def test_missing_files_are_clear_errors(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "nope.log"), "--results", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
