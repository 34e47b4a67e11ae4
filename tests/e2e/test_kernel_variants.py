"""The default series built three other ways (INTERFACE.md, issue "test
power" item 3): CONFIG_TASK_ISOLATION=n, CONFIG_CPU_ISOLATION=n, and the
debug kernel (kconfigs/debug.config: lockdep, KASAN, UBSAN) running the
whole guest suite, the 10,000-call fuzz tests included, with no splat.

Each is a cold build of its own configuration (ccache's depend mode hashes
the generated autoconf.h), so these run from `make variants`, not from
`make test`; README "Kernel variants" has their latest figures.
"""

from __future__ import annotations

import os
from xml.etree import ElementTree

import pytest
from junitparser import Error, Failure, Skipped

from conftest import run_cli

pytestmark = pytest.mark.variants

FUZZ_CALLS = 10000


def guest_results(run) -> dict[str, str]:
    """Each guest testcase: "passed", "skipped: why", "failed"."""
    out = {}
    for name, case in run.cases().items():
        if not name.startswith("guest::"):
            continue
        kinds = [r for r in case.result]
        if any(isinstance(r, (Failure, Error)) for r in kinds):
            out[name] = "failed"
        elif kinds and isinstance(kinds[0], Skipped):
            out[name] = f"skipped: {kinds[0].message}"
        else:
            out[name] = "passed"
    return out


def configured_out_run(results_root, fragment: str, *extra: str):
    run = run_cli(["check", "--kconfig", "base", "--kconfig", "isolation", "--kconfig", fragment, *extra,
                   "-k", "configured_out"], results_root / fragment / "latest")
    assert run.rc == 0, run.output[-3000:]
    return guest_results(run)


def test_task_isolation_configured_out(results_root):
    got = configured_out_run(results_root, "no-task-isolation")
    ran = {n: r for n, r in got.items() if "configured_out_every_option_is_einval" in n}
    assert list(ran.values()) == ["passed"], got
    other = {n: r for n, r in got.items() if "cpu_isolation_configured_out" in n}
    assert [r.startswith("skipped: kernel's CONFIG_CPU_ISOLATION is y,") for r in other.values()] == [True], got


def test_cpu_isolation_configured_out(results_root):
    # isolcpus= and nohz_full= need CONFIG_CPU_ISOLATION: no such arguments.
    got = configured_out_run(results_root, "no-cpu-isolation", "--profile", "none")
    ran = {n: r for n, r in got.items() if "cpu_isolation_configured_out_paths_behave_as_stock" in n}
    assert list(ran.values()) == ["passed"], got


def test_debug_kernel_runs_the_whole_suite_without_a_splat(results_root):
    results = results_root / "debug" / "latest"
    run = run_cli(["check", "--kconfig", "base", "--kconfig", "isolation", "--kconfig", "debug",
                   "--timeout", "5400", "--test-timeout", "900"], results,
                  timeout=3 * 3600, env={**os.environ, "ISOLHARNESS_FUZZ_CALLS": str(FUZZ_CALLS)})
    console = (results / "console.log").read_text(errors="replace")
    assert "KernelAddressSanitizer initialized" in console, "not a KASAN kernel"
    assert "Lock dependency validator" in console, "not a lockdep kernel"
    # A splat fails the run (harness/console.py); rc 0 says there was none.
    assert run.rc == 0, run.output[-3000:]
    got = guest_results(run)
    assert len(got) >= 150, len(got)
    assert not [n for n, r in got.items() if r == "failed"], got
    skipped = {n: r for n, r in got.items() if r.startswith("skipped")}
    assert all("configured_out" in n for n in skipped), skipped
    fuzz = {n: r for n, r in got.items() if "test_fuzz" in n}
    assert sorted(fuzz.values()) == ["passed", "passed"], fuzz
    # The count reached the guest (harness/guest.py passes it through).
    case = ElementTree.parse(results / "guest-junit.xml").find(".//testcase[@name='test_fuzz_prctl']")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props.get("calls") == str(FUZZ_CALLS), props
