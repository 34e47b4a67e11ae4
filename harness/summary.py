"""Stage 6 (report, reading): derive the run's summary from its JUnit file.

``isolharness check`` and ``isolharness report DIR`` both go through here,
so a saved run re-renders exactly as it first printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite

from . import interference
from .ccache import CcacheStats
from .errors import HarnessError
from .junit import CONSOLE_SUITE, INFRA, STAGES_SUITE
from .kselftest import SUITE_PREFIX as KSELFTEST_SUITE_PREFIX
from .kunit import SUITE_PREFIX as KUNIT_SUITE_PREFIX
from .outcome import ERROR, FAILED, KCIDB, MISSED, PASSED, SKIPPED, exit_status, run_result
from .progress import fmt_duration


@dataclass
class CaseSummary:
    suite: str
    name: str
    status: str
    time: float
    message: str = ""
    result: str = ""        # KernelCI's word: FAIL ERROR MISS PASS SKIP (harness.outcome)
    interference: dict | None = None   # a guest test's account (harness.interference)


@dataclass
class Summary:
    properties: dict[str, str]
    stages: list[CaseSummary]
    console: list[CaseSummary]
    guest: list[CaseSummary]
    exit_status: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    result: str = ""        # the run's KernelCI word


def _status(case) -> tuple[str, str]:
    for res in case.result:
        if isinstance(res, Failure):
            return FAILED, res.message or ""
        if isinstance(res, Error):
            return (MISSED if res.type == INFRA else ERROR), res.message or ""
        if isinstance(res, Skipped):
            return SKIPPED, res.message or ""
    return PASSED, ""


def summarize(xml: JUnitXml) -> Summary:
    props: dict[str, str] = {}
    stages: list[CaseSummary] = []
    console: list[CaseSummary] = []
    guest: list[CaseSummary] = []
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    for suite in suites:
        if suite.name == STAGES_SUITE:
            props = {p.name: p.value for p in suite.properties()}
        for case in suite:
            status, message = _status(case)
            row = CaseSummary(suite.name or "", case.name or "", status, float(case.time or 0.0), message)
            if suite.name == STAGES_SUITE:
                stages.append(row)
            elif suite.name == CONSOLE_SUITE:
                console.append(row)
            else:
                # A guest error (pytest's "error" outcome: a broken fixture)
                # is a failed test, not a failure of the harness. A KUnit
                # or kselftest suite's error (expected but absent, a stream
                # cut off, no output) stays one.
                if row.status == ERROR and not (suite.name or "").startswith((KUNIT_SUITE_PREFIX,
                                                                              KSELFTEST_SUITE_PREFIX)):
                    row.status = FAILED
                row.interference = interference.from_case(case)
                guest.append(row)
    for row in stages + console + guest:
        row.result = KCIDB[row.status]
    statuses = [c.status for c in stages + console + guest]
    counts = {s: sum(1 for c in guest if c.status == s) for s in (PASSED, FAILED, SKIPPED)}
    return Summary(props, stages, console, guest, exit_status(statuses), counts, run_result(statuses))


def load(results_dir: Path) -> Summary:
    path = results_dir / "junit.xml"
    if not path.is_file():
        raise HarnessError(f"{path} does not exist", hint="pass the results directory of a run (default results/latest)")
    try:
        return summarize(JUnitXml.fromfile(str(path)))
    except Exception as exc:  # junitparser raises lxml/ElementTree errors
        raise HarnessError(f"{path} is not a readable JUnit file: {exc}") from exc


def write_json(summary: Summary, path: Path) -> None:
    path.write_text(json.dumps(asdict(summary), indent=2) + "\n")


VERDICTS = {0: "PASS", 1: "FAIL", 2: "ERROR"}


def _identity(props: dict[str, str], prefix: str) -> str:
    """One line for the kernel identity properties with that prefix."""
    words = [props.get(f"{prefix}_release", ""), props.get(f"{prefix}_version", "")]
    if props.get(f"{prefix}_build_id"):
        words.append(f"build-id {props[f'{prefix}_build_id']}")
    return " ".join(w for w in words if w)


def render(summary: Summary, results_dir: Path | None = None) -> str:
    out = []
    p = summary.properties
    out.append("isolharness summary")
    for key in ("kernel_base", "series", "series_hash", "config_hash", "accelerator", "profile"):
        if key in p:
            out.append(f"  {key:<12} {p[key]}")
    built, ran = _identity(p, "built"), _identity(p, "kernel")
    if built:
        out.append(f"  {'built':<12} {built}")
    if ran:
        out.append(f"  {'ran':<12} {'the kernel built' if ran == built else ran}")
    stats = CcacheStats.from_properties(p)
    if stats is not None:
        total = stats.cacheable
        line = (f"{stats.local_hits / total:.0%} local hits, {stats.remote_hits / total:.0%} remote hits "
                f"of {total} compiles" if total else "nothing compiled")
        if "ccache_remote" in p:
            line += f"; remote {p['ccache_remote']}"
        if stats.remote_errors:
            line += f", {stats.remote_errors} errors"
        out.append(f"  {'ccache':<12} {line}")
    out.append("")
    out.append(f"  {'stage':<10} {'result':<8} {'time':>8}  note")
    for s in summary.stages:
        out.append(f"  {s.name:<10} {s.status:<8} {fmt_duration(s.time):>8}  {s.message[:90]}")
    splats = [c for c in summary.console if c.status != PASSED]
    if summary.console:
        out.append(f"  {'console':<10} {'failed' if splats else 'passed':<8} {'':>8}  "
                   f"{len(splats)} kernel splat(s)" if splats else f"  {'console':<10} {'passed':<8}")
    for c in splats:
        out.append(f"    ! {c.message[:110]}")
    c = summary.counts
    if summary.guest:
        out.append(f"  {'tests':<10} {'failed' if c.get(FAILED) else 'passed':<8} "
                   f"{fmt_duration(sum(g.time for g in summary.guest)):>8}  "
                   f"{c.get(PASSED, 0)} passed, {c.get(FAILED, 0)} failed, {c.get(SKIPPED, 0)} skipped")
        for g in summary.guest:
            if g.status == FAILED:
                out.append(f"    x {g.suite}::{g.name}: {g.message.splitlines()[0][:100] if g.message else ''}")
    out.append("")
    verdict = summary.result or VERDICTS.get(summary.exit_status, "?")
    where = f" (results in {results_dir})" if results_dir else ""
    out.append(f"verdict: {verdict}, exit status {summary.exit_status}{where}")
    return "\n".join(out)


def render_interference(summary: Summary) -> str:
    """``isolharness report``'s table of the guest tests' accounts."""
    accounts = {g.name: interference.account(g.interference) for g in summary.guest if g.interference}
    if not accounts:
        return "interference: no account in this run (a guest suite without the plugin, or no isolated CPU)"
    return "interference (what reached the isolated CPUs during each test body):\n" + \
        interference.render_table(accounts)
