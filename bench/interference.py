#!/usr/bin/env python3
"""The cost of the interference account (tests/guest/interference.py): the
default run's guest suite booted twice on the kernel already built, with
the account and without it (ISOLHARNESS_INTERFERENCE=0, which only this
benchmark sets), in alternating order, each twice. Reports the guest test
time (the sum of the guest testcases' times) and the boot stage of each,
and the ratio with/without; the target is at most 1.15.

Writes bench/interference.json and prints it. Needs a built default kernel
(`make check-isol` first); takes about four guest runs (20 minutes under TCG).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from junitparser import JUnitXml

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def guest_time(results: Path) -> tuple[float, float, int]:
    """(sum of guest testcase times, boot stage time, guest testcases)."""
    tests = boot = 0.0
    count = 0
    for suite in JUnitXml.fromfile(str(results / "junit.xml")):
        for case in suite:
            if suite.name == "isolharness.stages" and case.name == "boot":
                boot = float(case.time)
            elif suite.name not in ("isolharness.stages", "isolharness.console"):
                tests += float(case.time or 0)
                count += 1
    return tests, boot, count


def run(label: str, account: bool, root: Path) -> dict[str, float]:
    results = root / label
    env = dict(os.environ)
    if not account:
        env["ISOLHARNESS_INTERFERENCE"] = "0"
    cmd = [str(BIN / "isolharness"), "boot", "--results", str(results)]
    print("$", " ".join(cmd), "(account)" if account else "(no account)", flush=True)
    res = subprocess.run(cmd, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        print(res.stdout[-4000:])
        raise SystemExit(f"benchmark step failed (exit {res.returncode})")
    tests, boot, count = guest_time(results)
    return {"tests": tests, "boot": boot, "cases": count}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="isolharness-bench-interference-"))
    with_, without = [], []
    for i, account in enumerate((True, False, False, True)):
        (with_ if account else without).append(run(f"run{i}", account, root))
    mean = {k: {key: sum(r[key] for r in rs) / len(rs) for key in ("tests", "boot")}
            for k, rs in (("with", with_), ("without", without))}
    out = {"date": time.strftime("%Y-%m-%d"), "runs_with": with_, "runs_without": without, "mean": mean,
           "ratio_tests": mean["with"]["tests"] / mean["without"]["tests"],
           "ratio_boot_stage": mean["with"]["boot"] / mean["without"]["boot"], "target": 1.15}
    (PROJECT / "bench" / "interference.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
