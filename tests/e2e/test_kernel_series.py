"""The kernel series through the pipeline: green on the patched kernel, red
(absent, not skipped) on the unpatched one, each patch checkpatch-clean."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import pytest
from junitparser import Error, Failure, Skipped

from conftest import PROJECT, run_cli


@dataclass(frozen=True)
class Series:
    name: str         # directory under patches/
    module: str       # its guest test module
    keyword: str      # -k expression selecting that module
    min_cases: int    # how many guest tests it has at least


SERIES = [
    Series("task-isolation", "test_task_isolation", "task_isolation", 40),
    Series("block-interf", "test_block_interf", "block_interf", 20),
]
IDS = [s.name for s in SERIES]
INTERFERENCE = "test_interference"       # the budget tests' module, run in the negative control too
# The series' own kselftest targets (patches/<series>/kselftest), with how
# many cases each has at least
KSELFTESTS = {"task-isolation": ("task_isolation", 14), "block-interf": ("block_interf", 7)}
UPSTREAM = "cpu-hotplug"                 # an upstream kselftest target run on both kernels
# The stock kernel, built with KUnit and KUnit's own tests (kconfigs/kunit.config)
UNPATCHED = ["--series", "none", "--kconfig", "base", "--kconfig", "isolation", "--kconfig", "kunit"]


def guest_cases(run, module: str) -> dict[str, object]:
    return {n: c for n, c in run.cases().items() if n.startswith("guest::") and module in (c.classname or "")}


@pytest.fixture(scope="module")
def unpatched_run(results_root):
    """The stock kernel, with every series' guest tests told to expect it."""
    args = ["check", *UNPATCHED, "-k", " or ".join([s.keyword for s in SERIES] + [INTERFERENCE]),
            "--kselftest", UPSTREAM]
    for s in SERIES:
        args += ["--expect", s.name]
    return run_cli(args, results_root / "negative" / "latest")


@pytest.fixture(scope="module")
def upstream_run(results_root):
    """The patched kernel (default series) with the upstream target added."""
    return run_cli(["check", "-k", "smoke", "--kselftest", UPSTREAM], results_root / "upstream" / "latest")


def kselftest_cases(run, target: str) -> dict[str, str]:
    """name: outcome of each case of kselftest.<target>."""
    prefix = f"kselftest.{target}::"
    return {n[len(prefix):]: (type(c.result[0]).__name__ if c.result else "passed")
            for n, c in run.cases().items() if n.startswith(prefix)}


@pytest.mark.parametrize("series", SERIES, ids=IDS)
def test_guest_tests_pass_on_the_patched_kernel(default_run, series):
    assert series.name in default_run.properties()["series"].split("+")
    cases = guest_cases(default_run, series.module)
    assert len(cases) >= series.min_cases, sorted(cases)
    bad = {n: c.result for n, c in cases.items() if c.result}
    assert not bad, bad


@pytest.mark.parametrize("series", SERIES, ids=IDS)
def test_negative_control_unpatched_kernel_reports_absent(unpatched_run, series):
    # 2: the series' kselftests, expected but absent, are ERRORs beside the failures
    assert unpatched_run.rc == 2, unpatched_run.output
    cases = guest_cases(unpatched_run, series.module)
    assert len(cases) >= series.min_cases, sorted(cases)
    for name, case in cases.items():
        assert case.result, f"{name} passed on a kernel without the series"
        assert not any(isinstance(r, Skipped) for r in case.result), f"{name} skipped instead of failing"
    messages = [r.message or "" for c in cases.values() for r in c.result if isinstance(r, (Failure, Error))]
    assert any("series expected but the feature is absent" in m for m in messages), messages[:3]


def test_negative_control_the_series_kunit_suite_is_expected_but_absent(unpatched_run):
    """--expect block-interf on a stock kernel built with KUnit: the suite
    could be there and is not, an ERROR, while KUnit's own suites ran (a
    kernel without KUnit is not held to it: tests/unit/test_kunit.py)."""
    case = unpatched_run.cases()["kunit.block_interf::(suite)"]
    assert isinstance(case.result[0], Error), case.result
    assert "KUnit suite block_interf expected but absent" in case.result[0].message
    own = [n for n, c in unpatched_run.cases().items() if n.startswith("kunit.kunit-try-catch-test::") and not c.result]
    assert own, sorted(n for n in unpatched_run.cases() if n.startswith("kunit."))


def test_a_ktap_stream_cut_by_a_kernel_panic_is_the_kernels_failure_with_the_panic_text(unpatched_run, results_root):
    """The same stock kernel booted with oops=panic: KUnit's own
    null-dereference case (kunit_fault) now panics the kernel in the middle
    of its KTAP. The suite is reported crashed, naming the panic; the run
    fails (exit 1), it is no harness error."""
    run = run_cli(["boot", *UNPATCHED, "--append", "oops=panic", "-k", "smoke"],
                  results_root / "kunit-panic" / "latest")
    assert run.rc == 1, run.output
    crashed = {n: c for n, c in run.cases().items() if n.startswith("kunit.kunit_fault::")}
    assert crashed, sorted(n for n in run.cases() if n.startswith("kunit."))
    messages = [r.message or "" for c in crashed.values() for r in c.result if isinstance(r, Failure)]
    assert any("ended before its results: Kernel panic - not syncing" in m for m in messages), messages
    assert "verdict: FAIL" in run.output


def test_the_kunit_suite_passes_on_the_patched_kernel(default_run):
    cases = {n: c for n, c in default_run.cases().items() if n.startswith("kunit.block_interf::")}
    assert len(cases) >= 7, sorted(cases)
    assert not [n for n, c in cases.items() if c.result and not isinstance(c.result[0], Skipped)], cases


@pytest.mark.parametrize("series", SERIES, ids=IDS)
def test_the_series_kselftests_pass_on_the_patched_kernel(default_run, series):
    target, at_least = KSELFTESTS[series.name]
    cases = kselftest_cases(default_run, target)
    assert len(cases) >= at_least, cases
    assert set(cases.values()) == {"passed"}, cases
    assert "kselftest" in [row["name"] for row in json.loads((default_run.results / "summary.json").read_text())["stages"]]


@pytest.mark.parametrize("series", SERIES, ids=IDS)
def test_negative_control_series_kselftests_are_expected_but_absent(unpatched_run, series):
    target, _ = KSELFTESTS[series.name]
    case = unpatched_run.cases()[f"kselftest.{target}::(target)"]
    assert isinstance(case.result[0], Error), case.result
    assert f"of series {series.name} expected but absent" in case.result[0].message
    assert f"kselftest: {target} not built: tools/testing/selftests/{target} is not in the tree" in unpatched_run.output


def test_an_upstream_kselftest_gives_the_same_results_patched_and_unpatched(upstream_run, unpatched_run):
    """The series must not change what an upstream target sees: case by
    case, the same outcome on both kernels."""
    patched, stock = kselftest_cases(upstream_run, UPSTREAM), kselftest_cases(unpatched_run, UPSTREAM)
    assert patched, upstream_run.output
    assert patched == stock, (patched, stock)
    assert upstream_run.rc == 0, upstream_run.output


def test_negative_control_interference_budgets_fail_on_the_unpatched_kernel(unpatched_run):
    """The budgets of tests/guest/test_interference.py judge the converted
    paths: on a kernel without them each fails, none passes or skips."""
    cases = guest_cases(unpatched_run, INTERFERENCE)
    assert len(cases) >= 10, sorted(cases)
    for name, case in cases.items():
        assert case.result and not any(isinstance(r, Skipped) for r in case.result), \
            f"{name} did not fail on a kernel without the series: {case.result}"


@pytest.mark.parametrize("series", SERIES, ids=IDS)
def test_every_patch_passes_checkpatch_strict(default_run, series):
    from harness.cache import cache_dir

    tree = next(t for t in sorted((cache_dir() / "work").glob("*/src")) if (t / "scripts" / "checkpatch.pl").is_file())
    directory = PROJECT / "patches" / series.name
    for patch in (directory / "series").read_text().split("\n"):
        patch = patch.split("#", 1)[0].strip()
        if not patch:
            continue
        res = subprocess.run([str(tree / "scripts" / "checkpatch.pl"), "--strict", "-q", str(directory / patch)],
                             cwd=tree, capture_output=True, text=True)
        assert res.returncode == 0, f"{patch}:\n{res.stdout}{res.stderr}"


def test_guest_programs_were_built_on_the_host(default_run, unpatched_run):
    """The suite's C programs come from the host before boot: built for the
    patched kernel, recorded as not building against the stock headers."""
    def outcome(run) -> bool:
        (result,) = (run.results / "programs").glob("task-isolation-uapi-*/result.json")
        return json.loads(result.read_text())["ok"]

    assert outcome(default_run) is True
    assert outcome(unpatched_run) is False
    assert "guest program task-isolation-uapi: built" in default_run.output


# Symbols added to the kernel after v6.12, which Debian's 6.12 trees may carry
# as backports: a series that uses one builds here and not on upstream
# v6.12 (INTERFACE.md: use nothing newer than v6.12). Each with the release
# that added it; extend the list when a backport bites.
AFTER_V6_12 = {
    "system_percpu_wq": "v6.17", "system_dfl_wq": "v6.17", "WQ_PERCPU": "v6.17",
    "hrtimer_setup": "v6.13", "secs_to_jiffies": "v6.13",
}


@pytest.mark.parametrize("series", SERIES, ids=IDS)
def test_series_uses_nothing_newer_than_v6_12(series):
    import re

    directory = PROJECT / "patches" / series.name
    found = []
    for patch in sorted(directory.glob("*.patch")):
        for n, line in enumerate(patch.read_text().splitlines(), 1):
            if line.startswith("+") and not line.startswith("+++"):
                for symbol, release in AFTER_V6_12.items():
                    if re.search(rf"\b{re.escape(symbol)}\b", line):
                        found.append(f"{patch.name}:{n}: {symbol} (added in {release}): {line[1:].strip()}")
    assert not found, "\n".join(found)
