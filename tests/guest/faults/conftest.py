"""The guest suite failing in the ways a harness must not take for a pass:
collected only with ISOLHARNESS_FAULT=<fault> (tests/e2e/test_honest_verdicts.py).

- interrupt: pytest interrupted mid-run (exit 2, a JUnit file of what ran);
- status: pytest exits 1 although no testcase failed;
- truncated: the JUnit file cut off after pytest wrote it.
"""

from __future__ import annotations

import os

import pytest

FAULT = os.environ.get("ISOLHARNESS_FAULT", "")


def pytest_sessionfinish(session, exitstatus):
    if FAULT == "status":
        session.exitstatus = 1


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # After the junitxml plugin wrote its file (in its own sessionfinish).
    path = getattr(config.option, "xmlpath", None)
    if FAULT == "truncated" and path and os.path.isfile(path):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
