"""Bodies for the faults of conftest.py (collected only with ISOLHARNESS_FAULT)."""

from __future__ import annotations

import os


def test_fault_first():
    assert True


def test_fault_second():
    if os.environ.get("ISOLHARNESS_FAULT") == "interrupt":
        raise KeyboardInterrupt("the guest suite interrupted mid-run")


def test_fault_third():
    assert True
