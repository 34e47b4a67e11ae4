"""The pipeline end to end: a green run, and the red runs it must report."""

from __future__ import annotations

import json
import subprocess

from junitparser import Failure

from conftest import PROJECT, qemu_processes, run_cli


def failures(case) -> list[Failure]:
    return [r for r in case.result if isinstance(r, Failure)]


def test_default_check_is_green_and_reports_everything(default_run):
    assert default_run.rc == 0, default_run.output
    cases = default_run.cases()
    for stage in ("prepare", "config", "build", "boot"):
        case = cases[f"isolharness.stages::{stage}"]
        assert not case.result, (stage, case.result)
    assert "isolharness.console::no kernel splat on the console" in cases
    guest = [name for name in cases if name.startswith("guest::")]
    assert any("test_isolated_cpus_match_profile" in name for name in guest), guest
    props = default_run.properties()
    for key in ("kernel_base", "series", "series_hash", "config_hash", "accelerator"):
        assert props.get(key), key
    assert props["accelerator"].split()[0] in ("kvm", "tcg")
    # The kernel that ran is the one built, named by build number and build-id.
    assert props["kernel_build_id"] == props["built_build_id"] and len(props["built_build_id"]) == 40
    assert props["kernel_version"] == props["built_version"] and props["built_version"].startswith("#")
    for name in ("junit.xml", "console.log", "summary.json", "build.log"):
        assert (default_run.results / name).is_file(), name
    assert "Linux version" in (default_run.results / "console.log").read_text()
    summary = json.loads((default_run.results / "summary.json").read_text())
    assert summary["exit_status"] == 0
    assert "verdict: PASS" in default_run.output


def test_report_rerenders_saved_run(default_run):
    again = run_cli(["report", str(default_run.results)], None)
    assert again.rc == default_run.rc
    assert "verdict: PASS" in again.output and "guest" in again.output


def test_panicking_kernel_is_red_with_the_panic_text(results_root, default_run):
    # Our arguments come after virtme-ng's rootfstype=9p, so this one wins and
    # the kernel cannot mount its root. The lean kernel (no block layer) then
    # panics because it cannot run virtme-ng's init ("Requested init ...
    # failed (error -2)"); one with BLOCK says "VFS: Unable to mount root fs".
    run = run_cli(["boot", "--append", "rootfstype=isolharness-nofs", "--timeout", "300"],
                  results_root / "panic" / "latest")
    assert run.rc == 1, run.output
    splats = [(n, c) for n, c in run.cases().items() if n.startswith("isolharness.console::splat")]
    assert splats, run.cases().keys()
    kinds = [n for n, _ in splats]
    assert any(": panic:" in n for n in kinds), kinds
    panic_case = next(c for n, c in splats if ": panic:" in n)
    assert "Kernel panic - not syncing" in failures(panic_case)[0].text
    assert not qemu_processes()


def test_hanging_guest_is_killed_and_reported(results_root, default_run):
    run = run_cli(["exec", "--timeout", "90", "--", "sleep", "100000"], results_root / "hang" / "latest")
    assert run.rc == 1, run.output
    boot = run.cases()["isolharness.stages::boot"]
    msg = failures(boot)[0].message
    assert "guest hung" in msg and "watchdog" in msg
    # The console's tail travels with the failure, and nothing is left running.
    assert "Linux version" in (run.results / "console.log").read_text()
    assert failures(boot)[0].text.strip()
    assert not qemu_processes()


def test_splat_fails_a_run_whose_command_succeeded(results_root, default_run):
    # LKDTM's WARNING test provokes a real WARN_ON; the command itself exits 0.
    run = run_cli(["exec", "--timeout", "300", "--", "sh", "-c",
                   "echo WARNING > /sys/kernel/debug/provoke-crash/DIRECT; echo done"],
                  results_root / "warn" / "latest")
    assert run.rc == 1, run.output
    splats = [c for n, c in run.cases().items() if n.startswith("isolharness.console::splat")]
    assert splats
    assert "WARNING:" in failures(splats[0])[0].text
    assert "Call Trace:" in failures(splats[0])[0].text


def test_exec_returns_the_guest_status(results_root, default_run):
    run = run_cli(["exec", "--timeout", "300", "--", "sh", "-c", "cat /sys/devices/system/cpu/isolated; exit 3"],
                  results_root / "exec" / "latest")
    assert run.rc == 3, run.output
    assert "2-3" in run.output
