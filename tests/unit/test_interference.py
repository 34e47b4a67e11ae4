"""The interference accounts on the host (harness/interference.py): read
from a guest testcase's property, printed per test, compared between
revisions; and the guest plugin's attribution of trace lines
(tests/guest/interference.py), on lines a guest recorded."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from junitparser import JUnitXml

from harness import interference
from harness.baseline import compare
from harness.summary import render_interference, summarize

GUEST = Path(__file__).resolve().parents[1] / "guest"


def xml_with(accounts: dict[str, dict], tmp_path: Path) -> JUnitXml:
    cases = "".join(
        f'<testcase classname="tests.guest.test_interference" name="{name}"><properties>'
        f"<property name=\"interference\" value='{json.dumps(acc)}'/></properties></testcase>"
        for name, acc in accounts.items())
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="guest">{cases}</testsuite></testsuites>')
    return JUnitXml.fromfile(str(path))


QUIET = {"2": {"irq": {"LOC": 1}}, "quiet": ["2"], "background": ["2:irq:LOC"]}
NOISY = {"2": {"csd": {"remote_function": 3}, "irq": {"CAL": 3, "LOC": 1}}, "quiet": ["2"],
         "background": ["2:irq:CAL", "2:irq:LOC"]}


def test_the_summary_carries_each_guest_tests_account(tmp_path):
    s = summarize(xml_with({"t_quiet": QUIET, "t_noisy": NOISY}, tmp_path))
    assert {g.name: g.interference for g in s.guest} == {"t_quiet": QUIET, "t_noisy": NOISY}


def test_the_report_table_lists_non_zero_sources_per_test_and_cpu(tmp_path):
    table = render_interference(summarize(xml_with({"t_quiet": QUIET, "t_noisy": NOISY}, tmp_path)))
    noisy = next(line for line in table.splitlines() if "t_noisy" in line)
    assert "csd: remote_function x3" in noisy and "irq: CAL x3" in noisy and "[quiet]" in noisy


def test_an_unavailable_account_is_never_shown_as_empty(tmp_path):
    table = render_interference(summarize(xml_with({"t": {"unavailable": "no tracefs"}}, tmp_path)))
    assert "account unavailable: no tracefs" in table
    assert "nothing reached" not in table


def test_a_new_source_on_a_budgeted_test_is_a_regression(tmp_path):
    before = summarize(xml_with({"t": QUIET}, tmp_path))
    after = summarize(xml_with({"t": NOISY}, tmp_path))
    cmp = compare(before, after)
    assert cmp.regression
    assert cmp.new_interference == ["guest::t: cpu 2: csd:remote_function"]    # CAL is background
    back = compare(after, before)
    assert not back.new_interference and not back.regression  # a source removed is no regression,
    assert back.gone_interference == ["guest::t: cpu 2: csd:remote_function", "guest::t: cpu 2: irq:CAL"]


def test_a_new_source_under_a_broad_allowance_is_a_regression_a_new_background_one_is_not(tmp_path):
    """allow=("timers",) lets any timer pass the guest's budget; a timer the
    previous revision did not fire is still new interference. A background
    source (the residual tick), or anything on a CPU the test does not hold
    quiet, is not."""
    before = {"2": {"timers": {"clocksource_watchdog": 1}}, "3": {}, "quiet": ["2"], "allow": ["timers"],
              "background": ["2:timers:clocksource_watchdog"]}
    after = {"2": {"timers": {"clocksource_watchdog": 1, "delayed_work_timer_fn": 2}, "irq": {"LOC": 4}},
             "3": {"ran": {"kworker/3:1": 1}}, "quiet": ["2"], "allow": ["timers"],
             "background": ["2:timers:clocksource_watchdog", "2:irq:LOC"]}
    cmp = compare(summarize(xml_with({"t": before}, tmp_path)), summarize(xml_with({"t": after}, tmp_path)))
    assert cmp.new_interference == ["guest::t: cpu 2: timers:delayed_work_timer_fn"]


def test_allowed_sources_and_unbudgeted_tests_are_not_regressions(tmp_path):
    empty = {"2": {}, "quiet": ["2"]}
    assert not compare(summarize(xml_with({"t": empty}, tmp_path)),
                       summarize(xml_with({"t": QUIET}, tmp_path))).new_interference
    unbudgeted = {"2": {"csd": {"remote_function": 3}}}
    assert not compare(summarize(xml_with({"t": {}}, tmp_path)),
                       summarize(xml_with({"t": unbudgeted}, tmp_path))).new_interference


def _guest_module():
    sys.path.insert(0, str(GUEST))
    try:
        import interference as guest
    finally:
        sys.path.remove(str(GUEST))
    return guest


def test_guest_attribution_of_recorded_trace_lines():
    """tests/unit/data/interference-trace.txt: the plugin's instance in a
    guest of the default profile (isolated 2-3) while a script opened and
    closed a cpu-clock event on CPU 2, wrote stat_refresh, switched the
    clocksource away and back, and ran a child on CPU 3."""
    guest = _guest_module()
    lines = (Path(__file__).parent / "data" / "interference-trace.txt").read_text().splitlines()
    account = guest.Account((2, 3))
    for line in lines:
        for cpu, source, what in guest.attribute(line):
            account.add(cpu, source, what)
    on2, on3 = account.on(2), account.on(3)
    assert on2["csd"]["remote_function"] == 2                 # the install and the close
    assert "remote_function" not in on3.get("csd", {})
    assert on2["ran"]["migration/2"] == 2 and on3["ran"]["migration/3"] == 2   # two stop_machines
    assert on2["work_queued"]["refresh_vm_stats"] == on3["work_queued"]["refresh_vm_stats"] == 1
    assert on2["work_run"]["refresh_vm_stats"] == on3["work_run"]["refresh_vm_stats"] == 1
    assert on3["ran"]["python"] == 1                           # the child
    assert "python" not in on2.get("ran", {})
    # Every line of an accounted event is charged somewhere, but a switch to idle.
    for line in lines:
        if not line.startswith("#") and "next_pid=0 " not in line and ": " in line:
            assert guest.attribute(line), line


def test_guest_attribution_of_a_cpumask_ipi():
    """ipi_send_cpumask prints its mask as a %*pb bitmap (hex words)."""
    guest = _guest_module()
    line = ("          python-87      [000] d..1.    18.739438: ipi_send_cpumask: cpumask=00000000,0000000c "
            "callsite=on_each_cpu_cond_mask+0x24/0x40 callback=do_sync_core+0x0/0x30")
    assert guest.attribute(line) == [(2, "ipi", "do_sync_core from on_each_cpu_cond_mask"),
                                     (3, "ipi", "do_sync_core from on_each_cpu_cond_mask")]
    assert guest.timestamp_ns(line) == 18_739_438_000


def test_durations_are_read_and_shown_beside_the_counts(tmp_path):
    acc = {"2": {"irq": {"LOC": 2}}, "ns": {"2": {"irq": {"local_timer:236": 1500, "call_function:251": 900},
                                                 "thread": {"python3": 2_500_000}}}}
    parsed = interference.account(acc)
    assert parsed.ns["2"]["thread"]["python3"] == 2_500_000 and "ns" not in parsed.counts
    line = next(x for x in render_interference(summarize(xml_with({"t": acc}, tmp_path))).splitlines()
                if x.startswith("  t "))
    assert "irq: LOC x2" in line and "noise: irq 2.4us, thread 2.5ms" in line


def test_a_noise_budget_is_judged_only_where_durations_mean_something(monkeypatch):
    guest = _guest_module()
    account = guest.Account((2,))
    account.add_ns(2, "irq", "local_timer:236", 4_000)
    account.add_ns(2, "thread", "kworker/2:1", 30_000)
    assert account.noise_us(2) == 34.0
    over = guest.noise_problem(account, 2, 10)
    assert "34.0 us of noise, over its budget of 10 us" in over
    assert over.index("kworker/2:1 30.0 us") < over.index("local_timer:236 4.0 us")   # largest first
    assert guest.noise_problem(account, 2, 50) == ""
    account.durations = "no osnoise tracer in this kernel (CONFIG_OSNOISE_TRACER)"
    assert "no durations were recorded: no osnoise tracer" in guest.noise_problem(account, 2, 50)
    monkeypatch.delenv("ISOLHARNESS_DURATIONS", raising=False)
    assert not guest.durations_budgeted()
    monkeypatch.setenv("ISOLHARNESS_DURATIONS", "1")
    assert guest.durations_budgeted()


UNAVAILABLE_SUITE = """
import pytest

@pytest.mark.quiet(2)
def test_budgeted():
    pass

def test_plain():
    pass
"""


@pytest.mark.parametrize("isolated, user, why", [
    ("2-3", "nobody", "cannot mount tracefs"),
    ("", "root", "no CPU of interest: the kernel isolates no CPU"),
])
def test_without_tracefs_or_isolated_cpus_every_account_is_unavailable(isolated, user, why):
    """The guest plugin where it cannot record (a --target user without
    root, a machine without isolcpus=): each testcase says unavailable, and
    a budget is skipped, never passed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the plugin as another user")
    with tempfile.TemporaryDirectory(prefix="isolharness-unavailable-") as where:
        _run_unavailable(Path(where), isolated, user, why)


def _run_unavailable(tmp_path: Path, isolated: str, user: str, why: str) -> None:
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(GUEST)!r})\nimport interference\n"
        "def pytest_configure(config):\n    interference.register(config)\n")
    (tmp_path / "test_unavailable.py").write_text(UNAVAILABLE_SUITE)
    os.chmod(tmp_path, 0o777)
    env = {"PATH": os.environ["PATH"], "ISOLHARNESS_SERIES": "block-interf", "ISOLHARNESS_ISOLATED": isolated,
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)}
    junit = tmp_path / "junit.xml"
    who = pwd.getpwnam(user)
    res = subprocess.run(["setpriv", f"--reuid={who.pw_uid}", f"--regid={who.pw_gid}", "--clear-groups", sys.executable,
                          "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    cases = {c.name: c for suite in JUnitXml.fromfile(str(junit)) for c in suite}
    for name in ("test_budgeted", "test_plain"):
        acc = interference.account(interference.from_case(cases[name]))
        assert why in acc.unavailable and not acc.counts, (name, acc)
    assert "interference budget not judged" in str(cases["test_budgeted"].result[0].message)
    assert not cases["test_plain"].result


def test_guest_durations_from_recorded_osnoise_lines():
    """tests/unit/data/osnoise-trace.txt: the plugin's instance with the
    osnoise tracer (NO_OSNOISE_WORKLOAD) in a guest of the default profile,
    while a child spun for 1 s on CPU 2, then wrote stat_refresh."""
    guest = _guest_module()
    lines = (Path(__file__).parent / "data" / "osnoise-trace.txt").read_text().splitlines()
    account = guest.Account((2, 3))
    timed = [t for t in map(guest.noise, lines) if t]
    for t in timed:
        account.add_ns(*t)
    assert (2, "irq", "local_timer", 405733) in timed
    assert (2, "softirq", "TIMER", 210393) in timed             # the name padded by %8s
    assert not any(what.startswith("swapper") for _, _, what, _ in timed)   # idle is no noise
    spin = account.ns[2]["thread"]["python"]
    assert 0.9e9 < spin < 1.2e9                                  # the child's second on CPU 2
    assert set(account.ns[3]) <= {"irq", "softirq", "thread"} and "python" not in account.ns[3].get("thread", {})
    assert all(guest.attribute(line) == [] for line in lines if "_noise:" in line)   # counted apart
    assert json.loads(account.compact())["ns"]["2"]["irq"]["local_timer"] == account.ns[2]["irq"]["local_timer"]
