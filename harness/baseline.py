"""Revision against revision: compare this run's summary with the summary a
previous revision of the series left (``--baseline PREVIOUS/summary.json``).

A regression is a testcase (stage, splat check, per-patch build, checkpatch,
guest test) that fails now and did not fail before, including one that is
new and fails, or a new source of interference on a quiet CPU of a test
with a budget (harness.interference.new_sources). Fixes, tests added and
removed, interference a test no longer shows, and stage times are reported
too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import interference
from .errors import HarnessError
from .outcome import ERROR, FAILED, MISSED, PASSED
from .progress import fmt_duration
from .summary import CaseSummary, Summary

BAD = (FAILED, ERROR, MISSED)


@dataclass
class Comparison:
    new_failures: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stage_times: list[tuple[str, float | None, float]] = field(default_factory=list)
    new_interference: list[str] = field(default_factory=list)   # "test: cpu N: source:what"
    gone_interference: list[str] = field(default_factory=list)  # what a test's account no longer shows

    @property
    def regression(self) -> bool:
        return bool(self.new_failures or self.new_interference)


def load_summary_json(path: Path) -> Summary:
    if not path.is_file():
        raise HarnessError(f"baseline {path} does not exist",
                           hint="pass the summary.json a previous run wrote (results/latest/summary.json)")
    try:
        data = json.loads(path.read_text())
        return Summary(properties=data.get("properties", {}),
                       stages=[CaseSummary(**c) for c in data["stages"]],
                       console=[CaseSummary(**c) for c in data.get("console", [])],
                       guest=[CaseSummary(**c) for c in data.get("guest", [])],
                       exit_status=data.get("exit_status", 0), counts=data.get("counts", {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"baseline {path} is not an isolharness summary.json: {exc}") from exc


def _cases(s: Summary) -> dict[str, CaseSummary]:
    out = {f"stage::{c.name}": c for c in s.stages}
    out.update({f"console::{c.name}": c for c in s.console})
    out.update({f"{c.suite}::{c.name}": c for c in s.guest})
    return out


def compare(previous: Summary, current: Summary) -> Comparison:
    before, now = _cases(previous), _cases(current)
    cmp = Comparison()
    for key, case in now.items():
        old = before.get(key)
        if old is None:
            cmp.added.append(key)
        if case.status in BAD and (old is None or old.status not in BAD):
            cmp.new_failures.append(key)
        elif case.status == PASSED and old is not None and old.status in BAD:
            cmp.fixes.append(key)
    cmp.removed = [key for key in before if key not in now]
    for key, case in now.items():
        old = before.get(key)
        if old is not None and old.interference and case.interference:
            added = interference.new_sources(interference.account(old.interference),
                                             interference.account(case.interference))
            cmp.new_interference.extend(f"{key}: {item}" for item in added)
            gone = interference.gone_sources(interference.account(old.interference),
                                             interference.account(case.interference))
            cmp.gone_interference.extend(f"{key}: {item}" for item in gone)
    old_stages = {c.name: c.time for c in previous.stages}
    cmp.stage_times = [(c.name, old_stages.get(c.name), c.time) for c in current.stages]
    return cmp


def render_comparison(cmp: Comparison, baseline: Path) -> str:
    out = [f"against baseline {baseline}:"]
    for title, keys in (("new failures", cmp.new_failures), ("fixed", cmp.fixes),
                        ("tests added", cmp.added), ("tests removed", cmp.removed),
                        ("new interference", cmp.new_interference),
                        ("interference gone", cmp.gone_interference)):
        out.append(f"  {title:<16} {len(keys)}")
        out.extend(f"    {'x' if title in ('new failures', 'new interference') else '-'} {k}" for k in keys[:50])
        if len(keys) > 50:
            out.append(f"    ... and {len(keys) - 50} more")
    out.append(f"  {'stage':<22} {'before':>8} {'now':>8} {'delta':>8}")
    for name, old, new in cmp.stage_times:
        before = fmt_duration(old) if old is not None else "-"
        delta = "-" if old is None else ("+" if new >= old else "-") + fmt_duration(abs(new - old))
        out.append(f"  {name:<22} {before:>8} {fmt_duration(new):>8} {delta:>8}")
    out.append("regression: " + ("yes" if cmp.regression else "no"))
    return "\n".join(out)
