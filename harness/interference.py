"""Interference accounts on the host: read from each guest testcase's
"interference" property (written in the guest by tests/guest/interference.py),
printed as a per-test table by ``isolharness report``, and compared between
revisions by ``isolharness series --baseline``.

An account is ``{cpu: {source: {what: count}}}`` with non-zero counts only,
plus ``"quiet": [cpu, ...]`` and ``"allow": [...]`` when the test declares a
budget, ``"lost": true`` when the guest's trace buffer overflowed (counts
are lower bounds), or ``{"unavailable": why}`` when the guest could not
record one (never read as zero).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from junitparser import Properties

PROPERTY = "interference"
META = ("quiet", "allow", "lost", "unavailable")


@dataclass(frozen=True)
class TestAccount:
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)   # cpu -> source -> what -> n
    quiet: tuple[str, ...] = ()          # CPUs under a quiet budget
    allow: tuple[str, ...] = ()          # what that budget allows ("irq:LOC", or a whole source)
    lost: bool = False
    unavailable: str = ""

    def sources(self) -> set[tuple[str, str]]:
        """(cpu, "source:what") of every non-zero count."""
        return {(cpu, f"{src}:{what}") for cpu, srcs in self.counts.items() for src, c in srcs.items() for what in c}


def parse(text: str) -> TestAccount:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"an interference account is a JSON object, not {text[:60]!r}")
    return account(data)


def account(data: dict) -> TestAccount:
    counts = {cpu: v for cpu, v in data.items() if cpu not in META}
    return TestAccount(counts, tuple(str(c) for c in data.get("quiet", ())), tuple(data.get("allow", ())),
                       bool(data.get("lost")), str(data.get("unavailable", "")))


def from_case(case) -> dict | None:
    """The raw account of a junitparser TestCase, or None when it has none."""
    for props in case.iterchildren(Properties):
        for prop in props:
            if prop.name == PROPERTY:
                return json.loads(prop.value)
    return None


def render_table(accounts: dict[str, TestAccount]) -> str:
    """Per test, the non-zero sources on each CPU of interest."""
    out = [f"  {'test':<58} {'cpu':>3}  source: what x count"]
    shown = 0
    for name, acc in accounts.items():
        if acc.unavailable:
            out.append(f"  {name[:58]:<58} {'-':>3}  account unavailable: {acc.unavailable[:60]}")
            continue
        first = True
        for cpu in sorted(acc.counts, key=int):
            items = [f"{src}: {what} x{n}" for src, c in sorted(acc.counts[cpu].items()) for what, n in sorted(c.items())]
            if not items:
                continue
            budget = " [quiet]" if cpu in acc.quiet else ""
            out.append(f"  {(name if first else '')[:58]:<58} {cpu:>3}  {'; '.join(items)}{budget}")
            first = False
            shown += 1
    if shown == 0 and not any(a.unavailable for a in accounts.values()):
        out.append("  (nothing reached the CPUs of interest during any test body)")
    return "\n".join(out)


def new_sources(previous: TestAccount, current: TestAccount) -> list[str]:
    """On a budgeted test, the sources the current account has and the
    previous one had not, beyond what the budget allows: "cpu N: source:what"."""
    if not current.quiet or previous.unavailable or current.unavailable:
        return []
    old = previous.sources()
    out = []
    for cpu, key in sorted(current.sources() - old):
        src = key.split(":", 1)[0]
        if src in current.allow or key in current.allow:
            continue
        out.append(f"cpu {cpu}: {key}")
    return out
