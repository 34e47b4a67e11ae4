"""Shared fixtures for the tests that run inside the guest.

The harness passes what it knows through the environment: the installed
uapi headers of the kernel under test, the series applied to it, and the
CPUs the profile isolates. Every test gets an interference account
(interference.py); noisy/ holds the deliberately noisy negative control,
collected only with ISOLHARNESS_NOISY=1 (tests/e2e/test_interference_accounts.py);
faults/ the guest suite ending in ways that test nothing, collected only with
ISOLHARNESS_FAULT=<fault> (tests/e2e/test_honest_verdicts.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interference import PLUGIN_NAME, register

collect_ignore = ([] if os.environ.get("ISOLHARNESS_NOISY") == "1" else ["noisy"]) + \
    ([] if os.environ.get("ISOLHARNESS_FAULT") else ["faults"])


def pytest_configure(config):
    register(config)


def pytest_collection_modifyitems(config, items):
    if not Path("/sys/kernel").exists() or "ISOLHARNESS_SERIES" not in os.environ:
        skip = pytest.mark.skip(reason="guest tests run inside the isolharness guest only")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def applied_series() -> set[str]:
    return {s for s in os.environ.get("ISOLHARNESS_SERIES", "").split(",") if s}


@pytest.fixture(scope="session")
def expected_series() -> set[str]:
    """Series whose features must be present: a test of such a feature
    fails (not skips) when it is absent."""
    return {s for s in os.environ.get("ISOLHARNESS_EXPECT", "").split(",") if s}


@pytest.fixture(scope="session")
def headers() -> Path:
    path = Path(os.environ.get("ISOLHARNESS_HEADERS", ""))
    if not (path / "linux").is_dir():
        pytest.fail(f"installed uapi headers not found at {path!s}")
    return path


@pytest.fixture(scope="session")
def isolated_cpus() -> str:
    return os.environ.get("ISOLHARNESS_ISOLATED", "")


@pytest.fixture
def interference(request):
    """The recorder of the account, for tests that judge a stretch of their
    body: `with interference.window() as w: ...` then w.account."""
    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None or not hasattr(plugin, "recorder"):
        pytest.fail("no interference account in this session (no isolated CPU, or not in the guest)")
    return plugin.recorder
