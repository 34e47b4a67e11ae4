"""The negative control of the interference account: a body that runs a
function on the blocked CPU (a perf event opened there with the mask
empty, which the kernel installs with an IPI) under a budget that keeps
that CPU quiet. The account must show the call, by source, and the budget
must fail the test. Collected only with ISOLHARNESS_NOISY=1
(tests/e2e/test_interference_accounts.py)."""

from __future__ import annotations

import os

import pytest

from test_block_interf import cleared, cpus, perf_open  # noqa: F401 - fixtures


@pytest.mark.quiet("blocked")
def test_noisy_body_under_a_quiet_budget(cpus):
    fd, err = perf_open(cpus[0])
    assert err == 0, os.strerror(err)
    os.close(fd)
