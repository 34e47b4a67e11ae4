"""`isolharness test --target ssh://...` against a real OpenSSH server that
the test starts on the loopback address, with its own host and client keys.
The target is this machine, so the suite reports what its running kernel
does (the smoke tests, here); what is checked is the SSH path: host-key
checking, key refusal, an unreachable port, a missing interpreter, and a run
whose JUnit and kernel log come back into the usual report."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import run_cli
from servers import free_port

from harness.identity import notes_build_id

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "isolharness-e2e", "-f", str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    port = free_port()
    host_key, client_key = keygen(d / "host_key"), keygen(d / "client_key")
    # Keys per user, in a directory every user can read (sshd reads them
    # with the user's privileges): root, and PLAIN_USER when a test adds it.
    keys = Path(tempfile.mkdtemp(prefix="isolharness-e2e-keys-"))
    keys.chmod(0o755)
    for user in ("root", PLAIN_USER):
        (keys / user).write_text((d / "client_key.pub").read_text())
        (keys / user).chmod(0o644)
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {keys}/%u\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
    yield {"dir": d, "port": port, "key": client_key, "url": f"ssh://root@127.0.0.1:{port}"}
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(keys)


PLAIN_USER = "isolharness-e2e"


@pytest.fixture(scope="module")
def plain_user():
    """An account without privileges on this machine, for the length of the
    module: made here and removed here (an account of that name that was
    already there is used and left alone)."""
    made = subprocess.run(["getent", "passwd", PLAIN_USER], capture_output=True).returncode != 0
    if made:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/bin/sh", PLAIN_USER], check=True)
        # Not locked ("!"), which sshd refuses; no password either: keys only.
        subprocess.run(["usermod", "-p", "*", PLAIN_USER], check=True)
    try:
        yield PLAIN_USER
    finally:
        subprocess.run(["pkill", "-KILL", "-u", PLAIN_USER], check=False)
        if made:
            subprocess.run(["userdel", PLAIN_USER], check=False)


def remote_dirs() -> set[str]:
    return {str(p) for p in Path("/tmp").glob("isolharness.*")}


def target_args(sshd, known_hosts: Path, *extra: str) -> list[str]:
    return ["test", "--target", sshd["url"], "--identity", str(sshd["key"]), "--known-hosts", str(known_hosts),
            *extra]


def test_unknown_host_is_refused_then_recorded_and_the_suite_runs(sshd, tmp_path, default_run):
    kh = tmp_path / "known_hosts"
    run = run_cli(target_args(sshd, kh, "-k", "smoke"), tmp_path / "r1")
    assert run.rc == 2 and "is not in" in run.output and "--accept-new-host-key" in run.output
    assert not kh.exists()

    from harness.cache import cache_dir

    # Any installed uapi headers will do for the smoke test that looks for them.
    headers = sorted(cache_dir().glob("work/*/build/base+isolation/usr/include"))[0]
    run = run_cli(target_args(sshd, kh, "--accept-new-host-key", "-k", "smoke", "--headers", str(headers)),
                  tmp_path / "r2")
    assert run.rc in (0, 1), run.output           # 1: this machine's kernel is not isolated
    assert f"[127.0.0.1]:{sshd['port']} ssh-ed25519" in kh.read_text()
    cases = run.cases()
    assert cases["isolharness.stages::connect"].result == []
    assert cases["isolharness.stages::remote"].result == [], run.output
    assert any(n.startswith("isolharness.console::") for n in cases)
    smoke = [n for n in cases if n.startswith("guest::") and "cpu_count" in n]
    assert smoke and cases[smoke[0]].result == [], run.output   # nproc on the target, read over SSH
    assert (run.results / "console.log").is_file()
    assert cases["guest::test_uapi_headers_installed"].result == [], run.output  # --headers went up
    assert "PRIVATE KEY" not in run.output + (run.results / "guest-output.log").read_text()
    # The summary names the kernel the target runs (this machine's, here).
    props = run.properties()
    assert f"{props['kernel_release']} {props['kernel_version']}" == os.uname().release + " " + os.uname().version
    assert props.get("kernel_build_id", "") == notes_build_id(Path("/sys/kernel/notes").read_bytes())
    assert "ran          " + props["kernel_release"] in run.output

    # This machine isolates no CPU: every test's interference account says
    # so, none reads as an empty account.
    from harness.interference import account, from_case

    accounts = [account(from_case(cases[n])) for n in cases if n.startswith("guest::")]
    assert accounts and all("isolates no CPU" in a.unavailable and not a.counts for a in accounts), accounts

    # The host key is now known: the same run works without the flag.
    again = run_cli(target_args(sshd, kh, "-k", "cpu_count"), tmp_path / "r3")
    assert again.rc == 0, again.output


def test_a_user_who_cannot_read_the_kernel_log_gets_no_splat_pass(sshd, plain_user, tmp_path):
    """As a user without privileges (kernel.dmesg_restrict=1 here), dmesg
    fails: the splat check is an ERROR saying why, never "no splat"; the
    run exits 2; the remote directory is gone afterwards all the same."""
    if Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() != "1":
        pytest.skip("kernel.dmesg_restrict=0 on this machine: any user can read the kernel log")
    kh = tmp_path / "known_hosts"
    before = remote_dirs()
    url = sshd["url"].replace("root@", f"{plain_user}@")
    run = run_cli(["test", "--target", url, "--identity", str(sshd["key"]), "--known-hosts", str(kh),
                   "--accept-new-host-key", "-k", "cpu_count"], tmp_path / "r")
    assert run.rc == 2, run.output
    cases = run.cases()
    check = cases["isolharness.console::no kernel splat on the console"]
    assert check.result and "no splat check was possible" in check.result[0].message, check.result
    assert "kernel log cannot be read (dmesg exit" in check.result[0].message
    assert cases["isolharness.stages::remote"].result == [], run.output
    assert "verdict: ERROR" in run.output
    assert remote_dirs() <= before


def test_the_remote_directory_goes_when_the_suite_fails(sshd, tmp_path):
    """A guest stage ERROR (-k selecting nothing) after the upload: the
    temporary directory on the target is removed all the same."""
    before = remote_dirs()
    run = run_cli(target_args(sshd, tmp_path / "kh", "--accept-new-host-key", "-k", "no_such_test_anywhere"),
                  tmp_path / "r")
    assert run.rc == 2 and "selected no guest test" in run.output, run.output
    assert remote_dirs() <= before


def test_changed_host_key_is_refused(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    other = keygen(tmp_path / "other_host_key")
    kh.write_text(f"[127.0.0.1]:{sshd['port']} " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n")
    run = run_cli(target_args(sshd, kh, "--accept-new-host-key"), tmp_path / "r")
    assert run.rc == 2 and "does not match" in run.output and "ssh-keygen" in run.output


def test_refused_key(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    stranger = keygen(tmp_path / "stranger")
    run = run_cli(["test", "--target", sshd["url"], "--identity", str(stranger), "--known-hosts", str(kh),
                   "--accept-new-host-key"], tmp_path / "r")
    assert run.rc == 2 and "refused key" in run.output


def test_unreachable_target(tmp_path):
    run = run_cli(["test", "--target", f"ssh://root@127.0.0.1:{free_port()}"], tmp_path / "r")
    assert run.rc == 2 and "is unreachable" in run.output


def test_missing_python_on_target(sshd, tmp_path):
    run = run_cli(target_args(sshd, tmp_path / "kh", "--accept-new-host-key", "--remote-python",
                              "/nonexistent/python3"), tmp_path / "r")
    assert run.rc == 2 and "has no usable Python" in run.output and "was not found" in run.output


def test_bad_target_url(tmp_path):
    run = run_cli(["test", "--target", "root@host"], tmp_path / "r")
    assert run.rc == 2 and "is not ssh://user@host[:port]" in run.output


def host_key_line(sshd, marker: str = "") -> str:
    pub = " ".join((sshd["dir"] / "host_key.pub").read_text().split()[:2])
    return f"{marker + ' ' if marker else ''}[127.0.0.1]:{sshd['port']} {pub}\n"


OTHER_LINES = ("# my hosts, kept as written\n"
               "@cert-authority *.lab.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5vdEFyZWFsS2V5Rm9yVGVzdGluZ09ubHkx\n"
               "legacy.example ssh-unknowntype AAAAB3NzaC1yc2EAAAADAQABAAABAQ==\n")


def test_known_hosts_with_markers_and_unknown_types_is_read_and_kept(sshd, tmp_path, default_run):
    # paramiko's own loader stops with a traceback at @cert-authority, and its
    # save rewrites the file without what it cannot parse.
    kh = tmp_path / "known_hosts"
    kh.write_text(OTHER_LINES)
    kh.chmod(0o640)
    run = run_cli(target_args(sshd, kh, "--accept-new-host-key", "-k", "cpu_count"), tmp_path / "r")
    assert run.rc == 0, run.output
    assert kh.read_text() == OTHER_LINES + host_key_line(sshd)
    assert kh.stat().st_mode & 0o777 == 0o640
    again = run_cli(target_args(sshd, kh, "-k", "cpu_count"), tmp_path / "r2")
    assert again.rc == 0, again.output


def test_a_revoked_host_key_is_refused(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(OTHER_LINES + host_key_line(sshd) + host_key_line(sshd, "@revoked").replace(
        f"[127.0.0.1]:{sshd['port']}", "*"))
    before = kh.read_text()
    for extra in ([], ["--accept-new-host-key"]):
        run = run_cli(target_args(sshd, kh, *extra), tmp_path / "r")
        assert run.rc == 2 and "marked @revoked" in run.output, run.output
    assert kh.read_text() == before


def test_a_revoked_key_is_refused_when_its_known_entry_is_hashed(sshd, tmp_path):
    """Debian hashes known_hosts (HashKnownHosts yes): a hashed entry names
    no host an @revoked line could be matched against before the key is seen."""
    kh = tmp_path / "known_hosts"
    kh.write_text(host_key_line(sshd))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert kh.read_text().startswith("|1|")
    kh.write_text(kh.read_text() + host_key_line(sshd, "@revoked").replace(f"[127.0.0.1]:{sshd['port']}", "*"))
    run = run_cli(target_args(sshd, kh, "-k", "cpu_count"), tmp_path / "r")
    assert run.rc == 2 and "marked @revoked" in run.output, run.output


def test_a_target_suite_that_writes_no_junit_is_the_guest_stages_error(sshd, tmp_path):
    """The same guest verdict as the VM's: an interpreter on the target that
    exits 0 for the suite without running it (here a wrapper around
    python3) tested nothing, and the run says so."""
    fake = tmp_path / "python-that-runs-no-suite"
    fake.write_text('#!/bin/sh\ncase "$*" in *"-m pytest"*) exit 0;; esac\nexec python3 "$@"\n')
    fake.chmod(0o755)
    before = remote_dirs()
    run = run_cli(target_args(sshd, tmp_path / "kh", "--accept-new-host-key", "--remote-python", str(fake),
                              "-k", "cpu_count"), tmp_path / "r")
    assert run.rc == 2, run.output
    guest = run.cases()["isolharness.stages::guest"]
    assert guest.result and "wrote no JUnit file" in guest.result[0].message, guest.result
    assert not [n for n in run.cases() if n.startswith("guest::")]
    assert "verdict: ERROR" in run.output and remote_dirs() <= before
