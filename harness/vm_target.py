"""The virtme-ng VM as a Target (harness/target.py): the kernel just built,
booted in QEMU with the guest command; the console is its kernel log.

The boot is trusted only when the kernel that ran is the one built (its
banner, and the build-id the guest read from /sys/kernel/notes) and the
kernel command line was not cut; otherwise the Ran says why, and nothing it
shows counts (harness.target.judge_run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .accel import AccelChoice
from .guest import GUEST_JUNIT, GuestSuite, guest_env, in_project, prebuild_programs, pytest_command, warm_bytecode
from .identity import KernelIdentity, console_banners, parse_banner
from .outcome import StageResult
from .profile import Profile
from .collection import TestCollection, after_suite
from .target import Ran
from .vm import COMMAND_LINE_SIZE, VNG_NO_STATUS, VmSpec, cut_command_line, run_vm

CONSOLE_TAIL_LINES = 40


def mismatch(built: KernelIdentity, built_banner: str, booted_banner: str, ran: KernelIdentity | None) -> str:
    """Why the booted kernel is not the one built, or ""."""
    if built_banner and booted_banner and booted_banner != built_banner:
        return (f"the guest booted another kernel than the one built: built '{built_banner}', "
                f"booted '{booted_banner}'")
    if ran is not None and ran.build_id and built.build_id and ran.build_id != built.build_id:
        return (f"the guest runs another kernel than the one built: built build-id {built.build_id}, "
                f"running build-id {ran.build_id} ({ran.describe()})")
    return ""


def untrusted(built: KernelIdentity, built_banner: str, booted_banner: str, ran: KernelIdentity | None,
              cmdline_cut: bool) -> str:
    """Why nothing this boot showed is a verdict on the kernel built, or ""."""
    cut = (f"the kernel command line filled COMMAND_LINE_SIZE ({COMMAND_LINE_SIZE}) and was cut: "
           f"nothing the guest did counts")
    return mismatch(built, built_banner, booted_banner, ran) or (cut if cmdline_cut else "")


@dataclass
class VmTarget:
    image: Path
    profile: Profile
    suite: GuestSuite                   # where the guest suite and its results are (host paths: 9p)
    project: Path                       # the project tree the guest sees
    argv: list[str] | None              # a command to run instead of the suite (isolharness exec)
    choose: Callable[[], AccelChoice]   # the accelerator (may probe KVM with a short boot)
    built: KernelIdentity = KernelIdentity()
    built_banner: str = ""
    collections: tuple[TestCollection, ...] = ()   # KUnit at boot, kselftests after the suite
    stage: str = "boot"
    setup_stages: tuple[str, ...] = ()
    choice: AccelChoice | None = None

    def open(self, stages: list[StageResult]) -> None:
        pass

    def close(self) -> None:
        pass    # run_vm's process group is stopped in its own finally

    def run(self, suite: bool, timeout: float) -> Ran:
        self.choice = self.choose()
        results = self.suite.results
        if suite:
            warm_bytecode(self.project)
            command = after_suite(pytest_command(prebuild_programs(self.suite)), self.collections)
        else:
            command = in_project(Path.cwd(), self.argv or [], guest_env(self.suite))
        spec = VmSpec(self.image, self.profile, self.choice.accel, command, rwdirs=(results,), cwd=self.project)
        vm = run_vm(spec, results / "console.log", results / "guest-output.log", timeout)
        text = vm.console.read_text(errors="replace")
        banners = console_banners(text)
        booted = banners[0] if banners else ""
        junit = results / GUEST_JUNIT
        return Ran(status=None if vm.returncode in (None, VNG_NO_STATUS) else vm.returncode,
                   timed_out=vm.timed_out, duration=vm.duration, output=vm.output,
                   junit=junit if junit.is_file() else None, kernel_log=text,
                   started=bool(booted), start_problem=f"QEMU/virtme-ng did not start the kernel "
                                                       f"(vng exit {vm.returncode})",
                   reached_command=vm.reached_command, identity=vm.identity or parse_banner(booted),
                   untrusted=untrusted(self.built, self.built_banner, booted, vm.identity, cut_command_line(text)),
                   description=f"accelerator {vm.accel}",
                   log_tail="\n".join(text.splitlines()[-CONSOLE_TAIL_LINES:]))
