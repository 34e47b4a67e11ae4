"""Kernel identity: what a built vmlinux is, what a console and a guest say
ran, and the boot stage's rule that a kernel other than the one built is an
error of the run whose results are not reported."""

import subprocess
from pathlib import Path

from fakekernel import RELEASE, banner, make_vmlinux, readelf_build_id

from harness.build import built_identity
from harness.identity import (IDENTITY_COMMAND, KernelIdentity, console_banners, notes_build_id, parse_banner,
                              parse_identity_line)
from harness.outcome import MISSED, PASSED, StageResult
from harness.target import Ran, judge_run
from harness.vm_target import mismatch, untrusted
from harness.vm import cut_command_line, vng_init

# The first lines of a real guest console (default profile, TCG).
CONSOLE = """# vng --run /root/.cache/isolharness/build/x/base+isolation/arch/x86/boot/bzImage --verbose ...
[    0.000000] Linux version 6.12.117+ (isolharness@isolharness) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #3 SMP PREEMPT_DYNAMIC isolharness
[    0.000000] Command line: earlyprintk=serial,ttyS0,115200 console=ttyS0 root=/dev/root
"""


def test_banner_gives_release_and_version_past_the_compilers_parentheses():
    ident = parse_banner(banner(12, "6.12.117+"))
    assert ident.release == "6.12.117+"
    assert ident.version == "#12 SMP PREEMPT_DYNAMIC isolharness" and ident.build_number == "12"
    assert parse_banner("no banner") == KernelIdentity()


def test_console_banner_without_its_timestamp():
    assert console_banners(CONSOLE) == [CONSOLE.splitlines()[1].split("] ", 1)[1]]
    assert console_banners("[    1.2] nothing here\n") == []


def test_vmlinux_identity_matches_readelf(tmp_path):
    vmlinux = make_vmlinux(tmp_path, 7)
    ident, text = built_identity(tmp_path)
    assert text == banner(7)
    assert ident == KernelIdentity(RELEASE, "#7 SMP PREEMPT_DYNAMIC isolharness", readelf_build_id(vmlinux))
    assert len(ident.build_id) == 40


def test_a_stripped_vmlinux_gives_the_numbered_banner(tmp_path):
    vmlinux = make_vmlinux(tmp_path, 8, strip=True)
    ident, text = built_identity(tmp_path)
    assert text == banner(8) and ident.build_id == readelf_build_id(vmlinux)


def test_build_id_follows_contents_not_the_build_number(tmp_path):
    a, _ = built_identity(make_vmlinux(tmp_path / "a", 1).parent)
    b, _ = built_identity(make_vmlinux(tmp_path / "b", 1, salt="other").parent)
    assert a.version == b.version and a.build_id != b.build_id


def test_identity_line_from_the_real_command(tmp_path):
    # The command the guest runs, run here: this host's kernel answers.
    out = subprocess.run(["sh", "-c", IDENTITY_COMMAND], capture_output=True, text=True, check=True).stdout
    ident = parse_identity_line("ISOLHARNESS-GUEST-START\n" + out)
    uname = subprocess.run(["uname", "-rv"], capture_output=True, text=True).stdout.strip()
    assert ident is not None and f"{ident.release} {ident.version}" == uname
    notes = Path("/sys/kernel/notes")
    if notes.is_file() and notes_build_id(notes.read_bytes()):
        assert ident.build_id == notes_build_id(notes.read_bytes())
    assert parse_identity_line("no marker\n") is None


def _boot(built: KernelIdentity, built_banner: str, booted: str, guest: KernelIdentity | None = None,
          cut: bool = False) -> StageResult:
    """The boot stage of a VM run whose console showed ``booted`` and whose
    guest said ``guest`` of its kernel (harness.vm_target, harness.target)."""
    ran = Ran(status=0, timed_out=False, duration=10.0, output=Path("/nonexistent"), junit=None,
              kernel_log=f"[    0.000000] {booted}\n", reached_command=guest is not None, identity=guest,
              untrusted=untrusted(built, built_banner, booted, guest, cut))
    return judge_run("boot", ran, 900, suite=False)


def test_the_kernel_built_passes_the_boot_stage():
    built = KernelIdentity(RELEASE, "#3 SMP PREEMPT_DYNAMIC isolharness", "ab" * 20)
    assert mismatch(built, banner(3), banner(3), built) == "" and _boot(built, banner(3), banner(3), built).status == PASSED


def test_an_older_kernel_in_the_image_is_an_error_naming_both():
    built = KernelIdentity(RELEASE, "#13 SMP PREEMPT_DYNAMIC isolharness", "ab" * 20)
    res = _boot(built, banner(13), banner(2))
    assert res.status == MISSED   # the environment's fault (KernelCI MISS): exit 2
    assert "#13 SMP" in res.message and "#2 SMP" in res.message and "another kernel" in res.message


def test_same_banner_other_contents_is_caught_by_the_build_id():
    # A build directory made anew restarts the build number: the banner can
    # repeat, the build-id cannot.
    built = KernelIdentity(RELEASE, "#1 SMP PREEMPT_DYNAMIC isolharness", "ab" * 20)
    running = KernelIdentity(RELEASE, "#1 SMP PREEMPT_DYNAMIC isolharness", "cd" * 20)
    res = _boot(built, banner(1), banner(1), running)
    assert res.status == MISSED and "ab" * 20 in res.message and "cd" * 20 in res.message


def test_a_guest_that_cannot_read_its_notes_is_judged_by_the_banner():
    built = KernelIdentity(RELEASE, "#3 SMP PREEMPT_DYNAMIC isolharness", "ab" * 20)
    running = KernelIdentity(RELEASE, "#3 SMP PREEMPT_DYNAMIC isolharness", "")
    assert _boot(built, banner(3), banner(3), running).status == PASSED


def test_a_command_line_cut_at_command_line_size_is_not_the_kernels_fault():
    # Recorded: a long -k and results path made vng's command line exceed
    # 2048 bytes; the kernel cut init= and panicked ("Requested init ...
    # failed (error -2)").
    data = Path(__file__).parent / "data"
    cut = (data / "console-cmdline-cut.log").read_text()
    init = "/work/main/.venv/lib/python3.11/site-packages/virtme/guest/bin/virtme-ng-init"  # of that run
    assert cut_command_line(cut, init) and "Kernel panic" in cut
    assert not cut_command_line(cut.replace("virtme/gues failed", "virtme/guest/bin/virtme-ng-init failed"), init)
    assert not cut_command_line((data / "console-clean.log").read_text(), init)
    assert vng_init().endswith("virtme/guest/bin/virtme-ng-init") and Path(vng_init()).is_file()
    built = KernelIdentity(RELEASE, "#3 SMP PREEMPT_DYNAMIC isolharness", "ab" * 20)
    res = _boot(built, banner(3), banner(3), cut=True)
    assert res.status == MISSED and "COMMAND_LINE_SIZE" in res.message
