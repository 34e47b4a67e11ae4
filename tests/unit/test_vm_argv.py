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
