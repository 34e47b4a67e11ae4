"""The task-isolation series through the pipeline: green on the patched
kernel, red (absent, not skipped) on the unpatched one, checkpatch-clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

from junitparser import Error, Failure, Skipped

from conftest import PROJECT, run_cli

SERIES_DIR = PROJECT / "patches" / "task-isolation"


def guest_cases(run, module: str) -> dict[str, object]:
    return {n: c for n, c in run.cases().items() if n.startswith("guest::") and module in (c.classname or "")}


def test_guest_tests_pass_on_the_patched_kernel(default_run):
    assert "task-isolation" in default_run.properties()["series"]
    cases = guest_cases(default_run, "test_task_isolation")
    assert len(cases) >= 40, sorted(cases)
    bad = {n: c.result for n, c in cases.items() if c.result}
    assert not bad, bad


def test_negative_control_unpatched_kernel_reports_absent(results_root):
    run = run_cli(["check", "--series", "none", "--expect", "task-isolation", "-k", "task_isolation"],
                  results_root / "ti-negative" / "latest")
    assert run.rc == 1, run.output
    cases = guest_cases(run, "test_task_isolation")
    assert len(cases) >= 40, sorted(cases)
    for name, case in cases.items():
        assert case.result, f"{name} passed on a kernel without the series"
        assert not any(isinstance(r, Skipped) for r in case.result), f"{name} skipped instead of failing"
    messages = [r.message or "" for c in cases.values() for r in c.result if isinstance(r, (Failure, Error))]
    assert any("series expected but the feature is absent" in m for m in messages), messages[:3]


def test_every_patch_passes_checkpatch_strict(default_run):
    from harness.cache import cache_dir

    tree = next((cache_dir() / "trees").glob("*-task-isolation"))
    for patch in (SERIES_DIR / "series").read_text().split():
        res = subprocess.run([str(tree / "scripts" / "checkpatch.pl"), "--strict", "-q", str(SERIES_DIR / patch)],
                             cwd=tree, capture_output=True, text=True)
        assert res.returncode == 0, f"{patch}:\n{res.stdout}{res.stderr}"
