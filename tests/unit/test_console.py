"""Splat detection on real consoles recorded from this harness's own guests:

* console-panic.log: `isolharness boot --append rootfstype=isolharness-nofs`
  (the kernel cannot mount its root and panics);
* console-warning.log: `isolharness exec -- sh -c 'echo WARNING >
  /sys/kernel/debug/provoke-crash/DIRECT'` (LKDTM's real WARN_ON);
* console-clean.log: a green `isolharness check`.
"""

from pathlib import Path

from harness.console import scan

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text(errors="replace")


def test_clean_boot_has_no_splat():
    assert scan(read("console-clean.log")) == []


def test_panic_is_found_with_its_text():
    splats = scan(read("console-panic.log"))
    kinds = [s.kind for s in splats]
    assert "panic" in kinds
    panic = splats[kinds.index("panic")]
    assert panic.title.startswith("Kernel panic - not syncing: VFS: Unable to mount root fs")
    assert "Kernel panic - not syncing" in panic.report


def test_warning_report_spans_cut_here_to_end_trace():
    splats = scan(read("console-warning.log"))
    assert [s.kind for s in splats] == ["warning"]
    report = splats[0].report.splitlines()
    assert "cut here" in report[0]
    assert "WARNING: CPU:" in report[1]
    assert any("Call Trace:" in line for line in report)
    assert "---[ end trace" in report[-1]
    # The Call Trace inside the WARNING is not reported a second time.


def test_bare_call_trace_and_other_kinds():
    text = "\n".join([
        "[    1.000000] some line",
        "[    1.500000] Call Trace:",
        "[    1.500001]  <TASK>",
        "[    2.000000] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
        "[    2.000001] Call Trace:",
        "[    2.000002]  <TASK>",
        "[    3.000000] rcu: INFO: rcu_preempt self-detected stall on CPU",
        "[    4.000000] watchdog: BUG: soft lockup - CPU#2 stuck for 22s! [a.out:99]",
        "[    5.000000] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
        "[    6.000000] UBSAN: array-index-out-of-bounds in x.c:1:2",
        "[    7.000000] WARNING: possible circular locking dependency detected",
        "[    8.000000] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP",
        "[    9.000000] Oops: int3: 0000 [#1] PREEMPT SMP",
        "[   10.000000] Call Trace:",  # part of the Oops, not a splat of its own
    ])
    kinds = [s.kind for s in scan(text)]
    assert kinds == ["call trace", "hung task", "rcu stall", "soft lockup", "kasan", "ubsan", "lockdep",
                     "general protection fault", "oops"]


def test_user_text_mentioning_words_is_not_a_splat():
    assert scan("pytest: 3 warnings\nthe BUG: label in a test name\n") == []
