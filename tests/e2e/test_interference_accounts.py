"""Interference accounting end to end: every guest test of the default
run carries an account, and a deliberately noisy test (tests/guest/noisy/,
collected with ISOLHARNESS_NOISY=1) is caught by its budget with the right
source, in junit.xml and in `isolharness report`."""

from __future__ import annotations

import json
import os

from junitparser import Failure

from conftest import run_cli
from harness import interference


def guest_cases(run) -> dict[str, object]:
    return {n: c for n, c in run.cases().items() if n.startswith("guest::")}


def test_every_guest_test_of_the_default_run_has_an_account(default_run):
    cases = guest_cases(default_run)
    assert len(cases) >= 150, len(cases)
    accounts = {n: interference.from_case(c) for n, c in cases.items()}
    assert not [n for n, a in accounts.items() if a is None], "tests without an account"
    assert not [n for n, a in accounts.items() if "unavailable" in a], accounts
    budgeted = [n for n, a in accounts.items() if a.get("quiet")]
    assert len(budgeted) >= 7, budgeted


def test_a_deliberately_noisy_test_fails_its_budget_with_the_source(results_root):
    results = results_root / "noisy" / "latest"
    run = run_cli(["check", "-k", "noisy"], results, env={**os.environ, "ISOLHARNESS_NOISY": "1"})
    assert run.rc == 1, run.output[-3000:]
    cases = guest_cases(run)
    name = "guest::test_noisy_body_under_a_quiet_budget"
    assert list(cases) == [name], list(cases)
    failure = next(r for r in cases[name].result if isinstance(r, Failure))
    assert "must stay quiet" in failure.message and "csd remote_function" in failure.message, failure.message
    account = interference.account(interference.from_case(cases[name]))
    blocked = account.quiet[0]
    assert account.counts[blocked]["csd"]["remote_function"] >= 1, account
    report = run_cli(["report", str(results)], None)
    table = report.output.split("\ninterference (", 1)[1]
    line = next(line for line in table.splitlines() if "test_noisy_body" in line)
    assert "csd: remote_function" in line and "[quiet]" in line, line
    json.loads((results / "summary.json").read_text())   # still a readable summary
