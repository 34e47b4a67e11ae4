"""kselftest targets (harness/kselftest.py): what is built, the command the
guest runs, and the TAP output read back with the kernel's own KTAP
parser, on outputs recorded from real runs: the series' selftests passing in
a guest, failing on mutants (02: a refused PR_ISOL_CTRL_SET deactivates;
01: PR_ISOL_SET applies known bits first; 20: the mask writable without
CAP_SYS_ADMIN), the upstream targets cpu-hotplug, prctl and timers, the task isolation selftest on a kernel without the series
(every test skips), an output whose programs' lines were lost (the guest's
/dev/stdout is virtme-ng's console), and the runner's own timeout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from junitparser import Error, Failure, Skipped

from harness import kselftest
from harness.collection import KselftestCollection, KunitCollection, after_suite
from harness.errors import HarnessError
from harness.kselftest import Installed, KselftestRequest, SeriesTarget

DATA = Path(__file__).parent / "data" / "kselftest"
TI = SeriesTarget("task_isolation", "CONFIG_TASK_ISOLATION", "task-isolation")


def results(suite) -> dict[str, tuple[str, str]]:
    return {c.name: ((type(c.result[0]).__name__, c.result[0].message or "") if c.result else ("passed", ""))
            for c in suite}


def parse(name: str, tree: Path, **kw):
    return kselftest.parse_output((DATA / name).read_text(), kw.pop("target", "task_isolation"), tree, **kw)


def test_the_series_selftests_pass_case_by_case(tree):
    ti = results(parse("task_isolation-pass.tap", tree, series=True))
    bi = results(parse("block_interf-pass.tap", tree, target="block_interf", series=True))
    assert len(ti) == 14 and len(bi) == 8
    assert set(v[0] for v in [*ti.values(), *bi.values()]) == {"passed"}
    assert "task_isolation_test/isol.quiesce_is_seen_from_another_cpu" in ti
    assert "block_interf_test/block_interf.mtrr_change_is_eperm" in bi


def test_a_failing_case_fails_with_its_assertion(tree):
    got = results(parse("task_isolation-mutant-02.tap", tree, series=True))
    kind, message = got["task_isolation_test/isol.activate_only_what_is_configured"]
    assert kind == "Failure" and ":Expected " in message, message
    # The program's exit status is explained by its failing case: no second failure.
    assert "task_isolation_test" not in got
    assert sum(1 for k, _ in got.values() if k == "passed") == 13


@pytest.mark.parametrize("data, target, case", [
    ("block_interf-mutant-20.tap", "block_interf", "block_interf_test/block_interf.writing_needs_cap_sys_admin"),
    ("task_isolation-mutant-01.tap", "task_isolation", "task_isolation_test/isol.set_refuses_unknown_bits_and_features"),
])
def test_the_selftests_fail_on_the_mutants_that_break_them(tree, data, target, case):
    """Mutant 20 (the mask writable without CAP_SYS_ADMIN) and mutant 01
    (PR_ISOL_SET applies the known bits before refusing): the series'
    selftests, run in those guests, fail in the case that checks the rule."""
    got = results(parse(data, tree, target=target, series=True))
    failed = {n for n, (k, _) in got.items() if k != "passed"}
    assert failed == {case}, got


def test_a_series_target_skipped_with_its_option_set_is_a_failure(tree):
    """The stock kernel's EINVAL makes every case skip: on a kernel built
    with CONFIG_TASK_ISOLATION=y that tested nothing it should have."""
    got = results(parse("task_isolation-unsupported.tap", tree, series=True, option_set="CONFIG_TASK_ISOLATION=y"))
    assert len(got) == 14
    assert all(k == "Failure" and "skipped on a kernel with CONFIG_TASK_ISOLATION=y" in m for k, m in got.values())


def test_a_skip_without_the_option_stays_a_skip(tree):
    got = results(parse("task_isolation-unsupported.tap", tree))
    assert {k for k, _ in got.values()} == {"Skipped"}
    assert "no task isolation" in next(iter(got.values()))[1]


def test_a_series_program_that_printed_no_results_is_an_error(tree):
    """Recorded when the guest's /dev/stdout was virtme-ng's console port:
    the runner's "ok" came back, the program's 14 results did not."""
    got = results(parse("task_isolation-no-output.tap", tree, series=True))
    assert got == {"task_isolation_test": ("Error", "task_isolation_test reported ok but printed no test results")}
    # An upstream program without TAP of its own (a shell script) is judged by its result line.
    assert results(parse("task_isolation-no-output.tap", tree)) == {"task_isolation_test": ("passed", "")}


def test_the_runners_timeout_fails_the_program_and_keeps_what_ran(tree):
    got = results(parse("timeout.tap", tree))
    assert got["task_isolation_test/first"] == ("passed", "")
    assert got["task_isolation_test"] == ("Failure", "task_isolation_test: TIMEOUT 1 seconds")


def test_an_output_cut_before_a_programs_result_is_an_error(tree):
    text = (DATA / "task_isolation-pass.tap").read_text()
    cut = text[:text.index("# ok 7 ")]
    got = results(kselftest.parse_output(cut, "task_isolation", tree, series=True))
    assert got["task_isolation_test"][0] == "Error" and "ended before its result" in got["task_isolation_test"][1]
    assert sum(1 for k, _ in got.values() if k == "passed") == 6


def test_no_output_at_all_is_an_error(tree):
    assert results(kselftest.parse_output("", "timers", tree)) == {
        "(run)": ("Error", "kselftest timers ran no test program")}


def request(tmp_path: Path, tree: Path, upstream=(), config: str = "") -> KselftestRequest:
    kconfig = tmp_path / ".config"
    kconfig.write_text(config)
    return KselftestRequest(tree, tmp_path / "build", tmp_path / "ks", (TI,), tuple(upstream), kconfig)


def test_targets_the_tree_lacks_and_builds_that_fail(tmp_path, tree):
    req = request(tmp_path, tree, upstream=("timers", "cpu-hotplug"))
    installed = Installed((), {"task_isolation": "tools/testing/selftests/task_isolation is not in the tree /t",
                               "timers": "make install failed (exit 2):\nlibfoo missing",
                               "cpu-hotplug": "tools/testing/selftests/cpu-hotplug is not in the tree /t"},
                          absent=("task_isolation", "cpu-hotplug"))
    got = {s.name: results(s) for s in kselftest.parse(req, installed, reached=True)}
    kind, message = got["kselftest.task_isolation"]["(target)"]
    assert kind == "Error" and "of series task-isolation expected but absent" in message
    assert got["kselftest.timers"]["(target)"][0] == "Error"
    assert got["kselftest.cpu-hotplug"]["(target)"][0] == "Error"
    # A series target that does not build is the series' failure.
    installed = Installed((), {"task_isolation": "make install failed (exit 2):\nerror: ..."})
    (suite,) = kselftest.parse(request(tmp_path, tree), installed, reached=True)
    assert results(suite)["(build)"][0] == "Failure"


def test_output_missing_counts_only_when_the_guest_ran_to_the_end(tmp_path, tree):
    req = request(tmp_path, tree)
    installed = Installed(("task_isolation",))
    (suite,) = kselftest.parse(req, installed, reached=True)
    assert results(suite) == {"(run)": ("Error", "kselftest task_isolation left no output in the guest")}
    assert kselftest.parse(req, installed, reached=False) == []


def test_the_kernels_config_decides_whether_a_skip_fails(tmp_path, tree):
    req = request(tmp_path, tree, config="CONFIG_TASK_ISOLATION=y\n")
    req.install.mkdir()
    req.output("task_isolation").write_text((DATA / "task_isolation-unsupported.tap").read_text())
    (suite,) = kselftest.parse(req, Installed(("task_isolation",)), reached=True)
    assert {k for k, _ in results(suite).values()} == {"Failure"}
    (tmp_path / ".config").write_text("# CONFIG_TASK_ISOLATION is not set\n")
    (suite,) = kselftest.parse(req, Installed(("task_isolation",)), reached=True)
    assert {k for k, _ in results(suite).values()} == {"Skipped"}


def test_a_series_lists_its_targets(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "kselftest").write_text("# comment\ntask_isolation CONFIG_TASK_ISOLATION\n\nother CONFIG_X\n")
    assert kselftest.series_targets([("a", tmp_path / "a"), ("b", tmp_path / "b")]) == (
        SeriesTarget("task_isolation", "CONFIG_TASK_ISOLATION", "a"), SeriesTarget("other", "CONFIG_X", "a"))
    # Without the option that gates it, a skip could never be judged
    (tmp_path / "a" / "kselftest").write_text("task_isolation\n")
    with pytest.raises(HarnessError, match="kselftest:1: 'task_isolation': each line names a target and the option"):
        kselftest.series_targets([("a", tmp_path / "a")])
    project = Path(__file__).resolve().parents[2] / "patches"
    assert [t.name for t in kselftest.series_targets([(n, project / n) for n in ("task-isolation", "block-interf")])] \
        == ["task_isolation", "block_interf"]


@pytest.mark.parametrize("name", ["../etc", "a b", "", "x/../../y", "-rf"])
def test_a_target_name_outside_the_selftests_is_refused(name):
    with pytest.raises(ValueError):
        kselftest.check_target_name(name)


def test_a_nested_target_name_is_taken():
    assert kselftest.check_target_name("net/forwarding") == "net/forwarding"


def test_the_command_keeps_the_suites_status_and_writes_each_output(tmp_path):
    """The composed command, run by sh: the runner's output lands in the
    target's file, and the command exits with the suite's status. On a
    machine whose /dev/stdout is not virtme-ng's port it leaves /dev alone."""
    req = KselftestRequest(Path("/t"), tmp_path / "b", tmp_path / "ks", (), ("demo",))
    runner = req.install / "demo" / kselftest.RUNNER
    runner.parent.mkdir(parents=True)
    runner.write_text("#!/bin/sh\necho 'TAP version 13'\necho '1..1'\necho 'ok 1 selftests: demo: t'\n")
    runner.chmod(0o755)
    before = Path("/dev/stdout").readlink() if Path("/dev/stdout").is_symlink() else None
    command = after_suite("sh -c 'exit 3'", (KselftestCollection(req, Installed(("demo",))),))
    res = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert res.returncode == 3, res.stderr
    assert req.output("demo").read_text().splitlines()[-1] == "ok 1 selftests: demo: t"
    assert (Path("/dev/stdout").readlink() if Path("/dev/stdout").is_symlink() else None) == before
    assert after_suite("PYTEST", (KselftestCollection(req), KunitCollection(Path("/t")))) == "PYTEST"


def test_kselftest_h_results_without_a_name_are_kept(tree):
    """timers' programs (kselftest.h) print "ok 3 # SKIP CLOCK_MONOTONIC_RAW":
    no name, which the KTAP parser alone would drop."""
    got = results(parse("timers.tap", tree, target="timers"))
    assert got["nanosleep/CLOCK_MONOTONIC_RAW"] == ("Skipped", "CLOCK_MONOTONIC_RAW")
    skipped = [n for n, (k, _) in got.items() if k == "Skipped"]
    assert len(skipped) >= 8, skipped
    # ...and a series target's such skip, with its option set, fails
    text = (DATA / "timers.tap").read_text()
    strict = results(kselftest.parse_output(text, "timers", tree, option_set="CONFIG_X=y"))
    assert strict["nanosleep/CLOCK_MONOTONIC_RAW"][0] == "Failure"


def test_the_upstream_targets_as_they_ran_here(tree):
    hotplug = results(parse("cpu-hotplug.tap", tree, target="cpu-hotplug"))
    assert hotplug == {"cpu-on-off-test.sh": ("passed", "")}
    prctl = results(parse("prctl.tap", tree, target="prctl"))
    assert prctl["set-anon-vma-name-test/vma.renaming"][0] == "Failure"
    assert prctl["set-process-name/global.rename_process"] == ("passed", "")
    assert prctl["disable-tsc-test"] == ("passed", "")


def test_output_cut_by_a_kernel_panic_is_the_kernels_failure(tree):
    text = (DATA / "task_isolation-pass.tap").read_text()
    cut = text[:text.index("# ok 7 ")]
    got = results(kselftest.parse_output(cut, "task_isolation", tree, series=True,
                                         crashed="Kernel panic - not syncing: Fatal exception"))
    assert got["task_isolation_test"] == ("Failure", "task_isolation_test: the output ended before its result: "
                                                     "Kernel panic - not syncing: Fatal exception")
    assert kselftest.kernel_died(True, "") == "the guest hung and was killed by the watchdog"
    assert kselftest.kernel_died(False, "x\n[ 1.0] Kernel panic - not syncing: Fatal exception\n") == \
        "Kernel panic - not syncing: Fatal exception"
    assert kselftest.kernel_died(False, None) == ""


def test_a_plan_cut_short_fails_even_when_the_program_exits_0(tree):
    text = (DATA / "task_isolation-pass.tap").read_text()
    start, end = text.index("# ok 7 "), text.index("# # PASSED")
    got = results(kselftest.parse_output(text[:start] + text[end:], "task_isolation", tree, series=True))
    assert got["task_isolation_test"] == ("Failure", "task_isolation_test: its results stopped before its plan's end")


def test_the_runners_own_plan_counts_its_programs(tree):
    """A runner that stops after its first program (killed) leaves the
    others unreported: never a pass."""
    text = (DATA / "prctl.tap").read_text()
    first = text[:text.index("# selftests: prctl: disable-tsc-on-off-stress-test")]
    got = results(kselftest.parse_output(first, "prctl", tree))
    assert got["(run)"] == ("Error", "kselftest prctl: 4 of its 5 programs never started (the runner stopped)")


def test_a_result_glued_to_an_unfinished_line_is_still_read(tree):
    text = ("TAP version 13\n1..1\n# selftests: demo: p\n# partial"
            "not ok 1 selftests: demo: p # exit=1\n")
    got = results(kselftest.parse_output(text, "demo", tree))
    assert got == {"p": ("Failure", "p: exit=1")}


def test_programs_of_a_nested_collection_keep_its_name(tree):
    text = ("TAP version 13\n1..2\n# selftests: net: p\nok 1 selftests: net: p\n"
            "# selftests: net/forwarding: p\nok 2 selftests: net/forwarding: p\n")
    assert set(results(kselftest.parse_output(text, "net", tree))) == {"p", "net/forwarding:p"}
