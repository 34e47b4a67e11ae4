from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.profile import make_profile
from harness.vm import ROOT_ARG, VmSpec, vng_argv


def appended(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--append"]


def spec(profile: str = "default", **kw) -> VmSpec:
    return VmSpec(image=Path("/k/bzImage"), profile=make_profile(profile, **kw), accel="tcg", command="true")


def test_root_is_named_before_the_profile_arguments():
    # The lean config has no block layer: the 9p root is mounted only when
    # root= names its tag, and a profile's own root= must still win.
    assert appended(vng_argv(spec())) == [ROOT_ARG, "isolcpus=domain,managed_irq,2-3 nohz_full=2-3 rcu_nocbs=2-3"]
    assert appended(vng_argv(spec(append=["root=/dev/other"])))[-1].endswith("root=/dev/other")


def test_profile_without_arguments_still_names_the_root():
    assert appended(vng_argv(spec("none"))) == [ROOT_ARG]


def test_tcg_is_single_threaded_and_unknown_accelerators_are_refused():
    argv = vng_argv(spec())
    assert "--disable-kvm" in argv and "--qemu-opts=-accel tcg,thread=single" in argv
    with pytest.raises(HarnessError, match="unknown accelerator"):
        vng_argv(VmSpec(image=Path("/k"), profile=make_profile("default"), accel="hvf", command="true"))


def test_the_command_prints_the_start_marker_first():
    argv = vng_argv(spec())
    assert argv[argv.index("--exec") + 1].startswith("echo ISOLHARNESS-GUEST-START; ")


def stand_in_vng(tmp_path: Path, body: str) -> Path:
    """An executable in vng's place: real processes, no guest."""
    vng = tmp_path / "vng"
    vng.write_text(f"#!/bin/sh\n{body}\n")
    vng.chmod(0o755)
    return vng


def run_stand_in(tmp_path, monkeypatch, body: str, stall: float | None, timeout: float = 20.0):
    import time

    from harness import vm

    monkeypatch.setattr(vm, "_vng_path", lambda: str(stand_in_vng(tmp_path, body)))
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0")
    s = VmSpec(image=image, profile=make_profile("none"), accel="kvm", command="true")
    start = time.monotonic()
    res = vm.run_vm(s, tmp_path / "console.log", tmp_path / "out.log", timeout, stage="probe", quiet=True,
                    stall=stall)
    return res, time.monotonic() - start


def test_a_guest_that_stops_printing_before_its_command_is_ended_early(tmp_path, monkeypatch):
    # What a hung KVM guest does: the decompressor's lines, then silence.
    res, took = run_stand_in(tmp_path, monkeypatch, "echo 'Booting the kernel' >&2; sleep 2; "
                                                    "echo 'still booting' >&2; exec sleep 60", stall=3.0)
    assert res.stalled and res.timed_out and res.returncode is None and not res.reached_command
    assert 5.0 <= took < 15.0, took  # the silence counts from the last line, not from the start
    assert b"still booting" in (tmp_path / "console.log").read_bytes()


def test_silence_after_the_command_started_is_no_stall(tmp_path, monkeypatch):
    from harness.vm import START_MARKER

    res, _ = run_stand_in(tmp_path, monkeypatch, f"echo {START_MARKER}; sleep 4; echo done", stall=1.0)
    assert not res.stalled and not res.timed_out and res.returncode == 0 and res.reached_command
    res, _ = run_stand_in(tmp_path, monkeypatch, "sleep 3; exit 7", stall=None, timeout=30)
    assert not res.stalled and res.returncode == 7


def test_guest_env_names_the_kernel_config_and_passes_the_fuzz_settings(monkeypatch, tmp_path):
    from harness.guest import GuestSuite, guest_env

    suite = GuestSuite(tmp_path, tmp_path / "r", tmp_path / "h", ("task-isolation",), ("task-isolation",),
                       tmp_path / "src", "2-3", 4, 120, kconfig=tmp_path / "build" / ".config")
    monkeypatch.setenv("ISOLHARNESS_FUZZ_CALLS", "10000")
    monkeypatch.delenv("ISOLHARNESS_FUZZ_SEED", raising=False)
    monkeypatch.setenv("ISOLHARNESS_UNRELATED", "x")
    env = guest_env(suite)
    assert env["ISOLHARNESS_KCONFIG"] == str(tmp_path / "build" / ".config")
    assert env["ISOLHARNESS_FUZZ_CALLS"] == "10000"
    assert "ISOLHARNESS_FUZZ_SEED" not in env and "ISOLHARNESS_UNRELATED" not in env
