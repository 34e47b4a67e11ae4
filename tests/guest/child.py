"""Run a piece of a guest test in a forked child process: for task state
(isolation data, credentials, capabilities) that must not leak into the
pytest process or into the next test."""

from __future__ import annotations

import os
import pickle
import traceback

import pytest


def in_child(fn, *args):
    """Run fn(*args) in a forked child; return its result or re-raise its failure."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            payload = ("ok", fn(*args))
        except BaseException:  # noqa: BLE001 - everything goes back to the parent
            payload = ("err", traceback.format_exc())
        with os.fdopen(w, "wb") as f:
            pickle.dump(payload, f)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "err":
        pytest.fail(f"in child process:\n{value}")
    return value
