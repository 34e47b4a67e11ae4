#!/usr/bin/env python3
"""The cost of the interference account (tests/guest/interference.py): the
default run's guest suite booted twice on the kernel already built, with
the account and without it (ISOLHARNESS_INTERFERENCE=0, which only this
benchmark sets), in alternating order, each twice. Reports the guest test
time (the sum of the times of the guest testcases that ran in every run:
without the account the budgeted tests skip) and the boot stage of each
(which also holds the skipped tests' absence and the account's set-up),
and the ratios with/without; the target is at most 1.15.

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

from junitparser import JUnitXml, Skipped

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def guest_cases(results: Path) -> tuple[dict[str, float], float]:
    """(time of each guest testcase that ran, not skipped; boot stage time)."""
    cases: dict[str, float] = {}
    boot = 0.0
    for suite in JUnitXml.fromfile(str(results / "junit.xml")):
        for case in suite:
            if suite.name == "isolharness.stages" and case.name == "boot":
                boot = float(case.time)
            elif suite.name not in ("isolharness.stages", "isolharness.console"):
                if not any(isinstance(r, Skipped) for r in case.result):
                    cases[f"{case.classname}::{case.name}"] = float(case.time or 0)
    return cases, boot


def run(label: str, account: bool, root: Path) -> dict:
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
    cases, boot = guest_cases(results)
    return {"cases": cases, "boot": boot}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="isolharness-bench-interference-"))
    with_, without = [], []
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2,
                        help="runs with and without the account, alternating (default 2: four boots)")
    pairs = parser.parse_args().pairs
    order = [True, False, False, True] * (pairs // 2) + ([True, False] if pairs % 2 else [])
    for i, account in enumerate(order):
        (with_ if account else without).append(run(f"run{i}", account, root))
    # Without the account the budgeted tests skip: compare the tests that
    # ran in every run, so both sides do the same work.
    common = set.intersection(*(set(r["cases"]) for r in with_ + without))

    def mean(rs: list[dict], key: str) -> float:
        vals = [sum(r["cases"][c] for c in common) if key == "tests" else r[key] for r in rs]
        return sum(vals) / len(vals)

    means = {k: {key: mean(rs, key) for key in ("tests", "boot")} for k, rs in (("with", with_), ("without", without))}
    out = {"date": time.strftime("%Y-%m-%d"), "pairs": pairs, "tests_compared": len(common),
           "runs_with": [{"tests": sum(r["cases"][c] for c in common), "boot": r["boot"], "ran": len(r["cases"])}
                         for r in with_],
           "runs_without": [{"tests": sum(r["cases"][c] for c in common), "boot": r["boot"], "ran": len(r["cases"])}
                            for r in without],
           "mean": means,
           "ratio_tests": means["with"]["tests"] / means["without"]["tests"],
           "ratio_boot_stage": means["with"]["boot"] / means["without"]["boot"], "target": 1.15}
    (PROJECT / "bench" / "interference.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
