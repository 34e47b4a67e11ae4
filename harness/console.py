"""Scan a saved guest console for kernel splats.

A splat is a kernel report that means the kernel misbehaved even if every
test passed: Oops, BUG, WARNING (lockdep reports included), panic, general
protection fault, hung task, RCU stall, soft lockup, KASAN, UBSAN, or a bare
"Call Trace:". Each one becomes its own failing testcase carrying the
extracted report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Optional printk timestamp and caller id: "[   12.345678] " / "[   12.3][  T1] "
_PREFIX = r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[TC]\d+\]\s*)?"

# (kind, pattern) in priority order: the first that matches a line names it.
_STARTS: list[tuple[str, re.Pattern[str]]] = [
    (kind, re.compile(_PREFIX + pat))
    for kind, pat in [
        ("panic", r"Kernel panic - not syncing"),
        ("soft lockup", r"watchdog: BUG: soft lockup"),
        ("kasan", r"BUG: KASAN: "),
        ("ubsan", r"UBSAN: "),
        ("bug", r"BUG: "),
        ("oops", r"Oops(?::| -) "),
        ("general protection fault", r"general protection fault"),
        ("lockdep", r"WARNING: (?:possible (?:recursive|circular)|inconsistent lock state|suspicious RCU usage"
                    r"|possible irq lock inversion|lock held when returning|bad unlock balance|held lock freed)"),
        ("warning", r"WARNING: (?:CPU: \d+ PID: \d+|at )"),
        ("hung task", r"INFO: task \S+ blocked for more than \d+ seconds"),
        ("rcu stall", r"(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:stalls|expedited stalls)"),
        ("rcu stall", r"rcu: INFO: rcu_\w+ self-detected stall"),
        ("call trace", r"Call Trace:"),
    ]
]
_CUT_HERE = re.compile(_PREFIX + r"-+\[ cut here \]-+")
_END = re.compile(_PREFIX + r"---\[ end ")
MAX_REPORT_LINES = 80


@dataclass(frozen=True)
class Splat:
    kind: str
    line: int       # 1-based line number of the first line in the console
    title: str      # the line that opened it, timestamp stripped
    report: str     # the extracted report


def _strip_prefix(line: str) -> str:
    return re.sub(_PREFIX, "", line).strip()


def _start_kind(line: str) -> str | None:
    for kind, pat in _STARTS:
        if pat.search(line):
            return kind
    return None


def scan(console: str) -> list[Splat]:
    lines = console.splitlines()
    splats: list[Splat] = []
    i = 0
    while i < len(lines):
        kind = _start_kind(lines[i])
        if kind is None:
            i += 1
            continue
        first = i - 1 if i > 0 and _CUT_HERE.search(lines[i - 1]) else i
        end = i + 1
        # The report runs to its "---[ end" line; without one (a panic that
        # stops the machine, a bare stack dump), to the next report or a cap.
        while end < len(lines) and end - first < MAX_REPORT_LINES:
            if _END.search(lines[end]):
                end += 1
                break
            nxt = _start_kind(lines[end])
            if nxt is not None and nxt != "call trace" and not _CUT_HERE.search(lines[end]):
                break
            if _CUT_HERE.search(lines[end]):
                break
            end += 1
        splats.append(Splat(kind, i + 1, _strip_prefix(lines[i]), "\n".join(lines[first:end])))
        i = end
    return splats
