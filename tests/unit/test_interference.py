"""The interference accounts on the host (harness/interference.py): read
from a guest testcase's property, printed per test, compared between
revisions; and the guest plugin's attribution of trace lines
(tests/guest/interference.py), on lines a guest recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


QUIET = {"2": {"irq": {"LOC": 1}}, "quiet": ["2"], "allow": ["irq:LOC"]}
NOISY = {"2": {"csd": {"remote_function": 3}, "irq": {"CAL": 3, "LOC": 1}}, "quiet": ["2"], "allow": ["irq:LOC"]}


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
    assert sorted(cmp.new_interference) == ["guest::t: cpu 2: csd:remote_function", "guest::t: cpu 2: irq:CAL"]
    assert not compare(after, before).new_interference       # a source removed is no regression


def test_allowed_sources_and_unbudgeted_tests_are_not_regressions(tmp_path):
    empty = {"2": {}, "quiet": ["2"], "allow": ["irq:LOC"]}
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
