"""Interference accounts on the host: read from each guest testcase's
"interference" property (written in the guest by tests/guest/interference.py),
printed as a per-test table by ``isolharness report``, and compared between
revisions by ``isolharness series --baseline``.

An account is ``{cpu: {source: {what: count}}}`` with non-zero counts only,
plus ``"quiet": [cpu, ...]`` and ``"allow": [...]`` when the test declares a
budget and ``"background": ["cpu:source:what", ...]``, what the quiet CPUs
showed of the sources stock 6.12 sends them whatever the test does;
``"ns": {cpu: {kind: {what: ns}}}``, the osnoise tracer's durations, or
``"durations": why`` when there are none; ``"lost": true`` when the guest's
trace buffer overflowed (counts are lower bounds); or ``{"unavailable":
why}`` when the guest could not record one (never read as zero).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from junitparser import Properties

PROPERTY = "interference"
META = ("quiet", "allow", "background", "lost", "unavailable", "ns", "durations")


@dataclass(frozen=True)
class TestAccount:
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)   # cpu -> source -> what -> n
    quiet: tuple[str, ...] = ()          # CPUs under a quiet budget
    allow: tuple[str, ...] = ()          # what that budget allows ("irq:LOC", or a whole source)
    lost: bool = False
    unavailable: str = ""
    background: tuple[str, ...] = ()     # "cpu:source:what" on a quiet CPU, of the guest's BACKGROUND
    ns: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)   # cpu -> kind -> what -> ns
    durations: str = ""                  # why there are no durations

    def sources(self) -> set[tuple[str, str]]:
        """(cpu, "source:what") of every non-zero count."""
        return {(cpu, f"{src}:{what}") for cpu, srcs in self.counts.items() for src, c in srcs.items() for what in c}

    def noise(self, cpu: str) -> str:
        """The CPU's durations by kind: "irq 12.3us, thread 4.1ms"."""
        kinds = self.ns.get(cpu, {})
        return ", ".join(f"{kind} {_us(sum(c.values()))}" for kind, c in sorted(kinds.items()))


def _us(ns: int) -> str:
    return f"{ns / 1e6:.1f}ms" if ns >= 1_000_000 else f"{ns / 1e3:.1f}us"


def parse(text: str) -> TestAccount:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"an interference account is a JSON object, not {text[:60]!r}")
    return account(data)


def account(data: dict) -> TestAccount:
    counts = {cpu: v for cpu, v in data.items() if cpu not in META}
    return TestAccount(counts, tuple(str(c) for c in data.get("quiet", ())), tuple(data.get("allow", ())),
                       bool(data.get("lost")), str(data.get("unavailable", "")),
                       tuple(data.get("background", ())), dict(data.get("ns", {})), str(data.get("durations", "")))


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
        for cpu in sorted(set(acc.counts) | set(acc.ns), key=int):
            items = [f"{src}: {what} x{n}" for src, c in sorted(acc.counts.get(cpu, {}).items())
                     for what, n in sorted(c.items())]
            if acc.noise(cpu):
                items.append(f"noise: {acc.noise(cpu)}")
            if not items:
                continue
            budget = " [quiet]" if cpu in acc.quiet else ""
            out.append(f"  {(name if first else '')[:58]:<58} {cpu:>3}  {'; '.join(items)}{budget}")
            first = False
            shown += 1
    if shown == 0 and not any(a.unavailable for a in accounts.values()):
        out.append("  (nothing reached the CPUs of interest during any test body)")
    return "\n".join(out)


def _budgeted(acc: TestAccount) -> set[tuple[str, str]]:
    """(cpu, "source:what") on the quiet CPUs, beyond their background."""
    return {(cpu, key) for cpu, key in acc.sources()
            if cpu in acc.quiet and f"{cpu}:{key}" not in acc.background}


def new_sources(previous: TestAccount, current: TestAccount) -> list[str]:
    """On a budgeted test's quiet CPUs, the sources the current account has
    and the previous one had not, beyond the background every isolated CPU
    gets: "cpu N: source:what". One the budget does not allow has failed
    the test already; one it allows (``allow=("timers",)``) is caught here."""
    if not current.quiet or previous.unavailable or current.unavailable:
        return []
    return [f"cpu {cpu}: {key}" for cpu, key in sorted(_budgeted(current) - previous.sources())]


def gone_sources(previous: TestAccount, current: TestAccount) -> list[str]:
    """What a test's account no longer shows, on any CPU: "cpu N: source:what"."""
    if previous.unavailable or current.unavailable:
        return []
    return [f"cpu {cpu}: {key}" for cpu, key in sorted(previous.sources() - current.sources())]
