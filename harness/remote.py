"""``isolharness test --target ssh://user@host[:port]``: the guest suite on a
machine that already runs the kernel under test, over SSH (paramiko).

What the suite needs goes up as one tarball (tests/guest, the pure-Python
pytest packages from this environment, optionally the uapi headers), is
unpacked with the target's python3 into a fresh temporary directory, run
under coreutils ``timeout``, and the JUnit file and the kernel log written
meanwhile come back; the report is the VM run's (stages, splat scan of the
target's dmesg, guest tests). Host keys are checked against known_hosts
(``--accept-new-host-key`` records a host seen for the first time; a changed
key is always refused); authentication is by key only; nothing secret is
printed.
"""

from __future__ import annotations

import importlib.util
import io
import re
import shlex
import socket
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .errors import EnvironmentFault, HarnessError
from .files import atomic_write
from .guest import GUEST_JUNIT, GuestSuite, pytest_command
from .guest_verdict import STAGE as GUEST_STAGE
from .identity import IDENTITY_COMMAND, KernelIdentity, parse_identity_line
from .outcome import StageResult
from .results import rotate
from .report import report
from .summary import Summary
from .collection import TestCollection
from .target import Ran, record_interrupt, record_run_error, run_on, timed

PROJECT = Path(__file__).resolve().parent.parent
# Pure-Python packages the suite imports on the target, shipped from here.
SHIPPED = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pytest_timeout", "py")
REMOTE_DIR = re.compile(r"^/tmp/isolharness\.[A-Za-z0-9]{6,}$")
TARGET_URL = re.compile(r"^ssh://(?P<user>[^@/:\s]+)@(?P<host>\[[0-9a-fA-F:.]+\]|[^@/:\s\[\]]+)(?::(?P<port>\d+))?/?$")


@dataclass(frozen=True)
class SshAddress:
    user: str
    host: str
    port: int = 22

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass
class RemoteOptions:
    target: SshAddress
    identity: Path | None = None
    known_hosts: Path = field(default_factory=lambda: Path.home() / ".ssh" / "known_hosts")
    accept_new_host_key: bool = False
    python: str = "python3"
    headers: Path | None = None
    select: str | None = None
    expect: list[str] = field(default_factory=list)
    timeout: float = 900.0
    test_timeout: int = 120
    connect_timeout: float = 15.0
    results: Path = Path("results/latest")


def parse_target(url: str) -> SshAddress:
    m = TARGET_URL.match(url)
    if not m:
        raise HarnessError(f"--target '{url}' is not ssh://user@host[:port]")
    port = int(m.group("port") or 22)
    if not 0 < port < 65536:
        raise HarnessError(f"--target '{url}': port {port} is out of range")
    return SshAddress(m.group("user"), m.group("host").strip("[]"), port)


@dataclass
class KnownHosts:
    """known_hosts as OpenSSH reads it, as far as paramiko can: plain and
    hashed entries; ``@revoked`` keys refused for the hosts they name;
    ``@cert-authority`` lines and key types paramiko does not know are left
    in the file and not used (paramiko checks no host certificates)."""

    keys: paramiko.HostKeys
    revoked: list[paramiko.hostkeys.HostKeyEntry]

    def is_revoked(self, hostname: str, key: paramiko.PKey) -> bool:
        return any(e.key.get_name() == key.get_name() and e.key.get_base64() == key.get_base64()
                   and _matches(hostname, e.hostnames) for e in self.revoked)


def _matches(hostname: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("|1|"):
            if paramiko.HostKeys.hash_host(hostname, pattern) == pattern:
                return True
        elif re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), hostname):
            return True  # OpenSSH patterns know * and ? only ([host]:port is literal)
    return False


def load_known_hosts(path: Path) -> KnownHosts:
    keys, revoked = paramiko.HostKeys(), []
    entries = []
    text = path.read_text(errors="replace") if path.is_file() else ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line.strip(), lineno)
        except Exception:  # a key type or encoding paramiko does not know
            continue
        if entry is None or entry.key is None:
            continue
        if marker == "@revoked":
            revoked.append(entry)
        elif not marker:
            entries.append(entry)
    known = KnownHosts(keys, revoked)
    for entry in entries:
        for host in entry.hostnames:
            # A revoked key is never taken as known, whatever else lists it.
            if not known.is_revoked(host, entry.key) or host.startswith("|1|"):
                keys.add(host, entry.key.get_name(), entry.key)
    return known


def append_host_key(path: Path, hostname: str, key: paramiko.PKey) -> None:
    """Add one OpenSSH-style line to known_hosts, keeping every other line
    (comments, markers, keys paramiko does not know) as it was."""
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write(path, old + f"{hostname} {key.get_name()} {key.get_base64()}\n".encode(),
                 None if path.is_file() else 0o600)


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """For a host known_hosts does not list: refuse a revoked key; record a
    new one with --accept-new-host-key; refuse anything else."""

    def __init__(self, known_hosts: Path, known: KnownHosts, accept: bool) -> None:
        self.known_hosts, self.known, self.accept = known_hosts, known, accept

    def missing_host_key(self, client, hostname, key) -> None:
        if self.known.is_revoked(hostname, key) or (hostname.startswith("[") and self.known.is_revoked(
                hostname[1:].split("]", 1)[0], key)):
            raise paramiko.SSHException(f"REVOKED host key for {hostname}")
        if not self.accept:
            raise paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")
        append_host_key(self.known_hosts, hostname, key)
        print(f"remote: recorded new {key.get_name()} host key of {hostname} in {self.known_hosts}", flush=True)


def connect(opts: RemoteOptions) -> paramiko.SSHClient:
    t = opts.target
    client = paramiko.SSHClient()
    # Not client.load_host_keys(): paramiko's loader stops at lines it
    # cannot parse (@cert-authority) and its save drops them.
    known = load_known_hosts(opts.known_hosts)
    for host, keys in known.keys.items():
        for keytype, key in keys.items():
            client.get_host_keys().add(host, keytype, key)
    client.set_missing_host_key_policy(_HostKeyPolicy(opts.known_hosts, known, opts.accept_new_host_key))
    if opts.identity is not None and not opts.identity.is_file():
        raise HarnessError(f"--identity {opts.identity} does not exist")
    try:
        client.connect(t.host, t.port, username=t.user,
                       key_filename=str(opts.identity) if opts.identity else None,
                       look_for_keys=opts.identity is None, allow_agent=opts.identity is None,
                       timeout=opts.connect_timeout, banner_timeout=opts.connect_timeout,
                       auth_timeout=opts.connect_timeout)
    except paramiko.BadHostKeyException as exc:
        raise HarnessError(f"the host key of {t.host}:{t.port} does not match {opts.known_hosts}: "
                           f"it changed since it was recorded, or someone is in the middle; refusing to connect",
                           hint=f"if the change is expected: ssh-keygen -f {opts.known_hosts} -R "
                                f"'[{t.host}]:{t.port}', then run again with --accept-new-host-key") from exc
    except paramiko.AuthenticationException as exc:
        which = f"key {opts.identity}" if opts.identity else "the keys in ~/.ssh and the agent"
        raise HarnessError(f"{t} refused {which} (key-based authentication only)",
                           hint="add the public key to the target's ~/.ssh/authorized_keys, "
                                "or pass --identity") from exc
    except paramiko.SSHException as exc:
        if "REVOKED host key" in str(exc):
            raise HarnessError(f"the host key of {t.host}:{t.port} is marked @revoked in {opts.known_hosts}; "
                               f"refusing to connect") from exc
        if "not found in known_hosts" in str(exc):
            raise HarnessError(f"{t.host}:{t.port} is not in {opts.known_hosts}; its host key cannot be checked",
                               hint="verify the host's key fingerprint, then run again with "
                                    "--accept-new-host-key to record it") from exc
        raise HarnessError(f"SSH to {t} failed: {exc}") from exc
    except (OSError, socket.timeout) as exc:
        raise EnvironmentFault(f"{t.host}:{t.port} is unreachable: {exc}",
                           hint="check the address, the port and that sshd runs there") from exc
    # A hashed known_hosts entry (Debian's default) names no host that an
    # @revoked line can be matched against before the key is seen: the key
    # the server showed is checked again once it is known.
    key = client.get_transport().get_remote_server_key()
    if any(known.is_revoked(name, key) for name in (t.host, f"[{t.host}]:{t.port}")):
        client.close()
        raise HarnessError(f"the host key of {t.host}:{t.port} is marked @revoked in {opts.known_hosts}; "
                           f"refusing to connect")
    return client


def _run(client: paramiko.SSHClient, command: str, timeout: float, out=None) -> tuple[int, str]:
    """Run command; return its status and its standard output. With ``out``,
    standard output and error are streamed there and returned together.
    Without it, standard error is left out of what is returned: it also
    carries what sshd says of the session ("Could not chdir to home
    directory"), which must not be taken for the command's answer."""
    chan = client.get_transport().open_session()
    chan.set_combine_stderr(out is not None)
    chan.settimeout(timeout)
    chan.exec_command(command)
    chunks: list[bytes] = []
    try:
        while True:
            data = chan.recv(65536)
            if not data:
                break
            chunks.append(data)
            if out is not None:
                out.write(data)
                out.flush()
    except socket.timeout:
        chan.close()
        raise HarnessError(f"the command on the target did not finish in {timeout:.0f}s")
    return chan.recv_exit_status(), b"".join(chunks).decode(errors="replace")


def _put(client: paramiko.SSHClient, data: bytes, path: str, timeout: float = 300) -> None:
    """Write data to path on the target through the shell (no SFTP needed)."""
    chan = client.get_transport().open_session()
    chan.settimeout(timeout)
    chan.exec_command(f"cat > {shlex.quote(path)}")
    chan.sendall(data)
    chan.shutdown_write()
    if chan.recv_exit_status() != 0:
        raise HarnessError(f"could not write {path} on the target")


def _no_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def _bundle(headers: Path | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        # The whole directory: its tests read C sources and data beside them
        # (the subdirectories are collected only when asked for).
        tar.add(PROJECT / "tests" / "guest", "tests/guest", filter=_no_bytecode)
        for name in SHIPPED:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                continue
            origin = Path(spec.origin)
            if origin.name == "__init__.py":
                tar.add(origin.parent, f"pylib/{name}", filter=_no_bytecode)
            else:
                tar.add(origin, f"pylib/{origin.name}")
        if headers is not None:
            tar.add(headers, "headers")
    return buf.getvalue()


UNPACK = "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])"


@dataclass
class SshTarget:
    """A machine over SSH (harness.target.Target): connect and upload are
    stages of their own; the kernel log is the part of dmesg the run added."""
    opts: RemoteOptions
    stage: str = "remote"
    setup_stages: tuple[str, ...] = ("connect", "upload")
    # The machine booted before the run: its boot-time KUnit output is not
    # in the dmesg the run adds.
    collections: tuple[TestCollection, ...] = ()   # none yet: KUnit and kselftests run on the VM target only
    properties: dict[str, str] = field(default_factory=dict)
    client: paramiko.SSHClient | None = None
    remote_dir: str = ""                # checked against REMOTE_DIR before it is used
    _isolated: str = ""
    _cpus: int = 1
    _log_status: int = 0
    _log_before: str = ""

    def open(self, stages: list[StageResult]) -> None:
        opts = self.opts
        self.client = timed("connect", stages, lambda: connect(opts), str(opts.target))
        timed("upload", stages, self._upload)
        stages[-1].message = self.remote_dir

    def _upload(self) -> None:
        opts, client = self.opts, self.client
        status, version = _run(client, f"{shlex.quote(opts.python)} -c 'import sys; print(sys.version_info >= (3, "
                                       f"9))' 2>&1", 60)
        if status != 0 or (version.strip().splitlines() or [""])[-1] != "True":
            raise HarnessError(f"{opts.target} has no usable Python: '{opts.python}' "
                               + ("was not found" if status == 127 else f"failed or is older than 3.9: {version.strip()[:200]}"),
                               hint="install python3 (3.9 or newer) on the target, or pass --remote-python")
        _, where = _run(client, "mktemp -d /tmp/isolharness.XXXXXX 2>&1", 60)
        remote = where.strip()
        if not REMOTE_DIR.match(remote):
            raise HarnessError(f"could not make a temporary directory on {opts.target}: {where.strip()[:200]}")
        self.remote_dir = remote
        q = shlex.quote(remote)
        _put(client, _bundle(opts.headers), f"{remote}/bundle.tar.gz")
        status, out = _run(client, f"{shlex.quote(opts.python)} -c {shlex.quote(UNPACK)} "
                                   f"{q}/bundle.tar.gz {q} 2>&1 && mkdir -p {q}/results", 120)
        if status != 0:
            raise HarnessError(f"unpacking the suite on {opts.target} failed", detail=out[-2000:])
        _, isolated = _run(client, "cat /sys/devices/system/cpu/isolated 2>/dev/null; nproc", 30)
        lines = isolated.splitlines() or ["", "1"]
        self._isolated = lines[0].strip() if len(lines) > 1 else ""
        self._cpus = int(lines[-1].strip() or 1)
        self._log_status, self._log_before = _run(client, "dmesg 2>&1", 60)

    def run(self, suite: bool, timeout: float) -> Ran:
        opts, client, remote = self.opts, self.client, self.remote_dir
        start = time.monotonic()
        _, said = _run(client, IDENTITY_COMMAND, 30)
        running = parse_identity_line(said) or KernelIdentity()
        self.properties["kernel_base"] = f"{opts.target.host}: {running.release or 'unknown release'}"
        self.properties.update(running.properties("kernel"))     # also when what follows fails
        rdir = Path(remote)
        guest = GuestSuite(rdir, rdir / "results", rdir / "headers" if opts.headers else Path("/nonexistent"),
                           tuple(opts.expect), tuple(opts.expect), Path("/nonexistent"), self._isolated,
                           self._cpus, opts.test_timeout, opts.select)
        command = pytest_command(guest, opts.python, wrapper=("timeout", "-k", "10", str(int(timeout))),
                                 extra_env={"PYTHONPATH": f"{remote}/pylib", "TMPDIR": remote,
                                            # real hardware: noise durations are budgeted
                                            "ISOLHARNESS_DURATIONS": "1"},
                                 plugins=("pytest_timeout",))
        output = opts.results / "guest-output.log"
        with output.open("wb") as log:
            status, _ = _run(client, command, timeout + 60, out=log)
        junit: Path | None = None
        got, xml_text = _run(client, f"cat {shlex.quote(remote)}/results/{GUEST_JUNIT}", 60)
        if got == 0 and xml_text.strip():
            junit = opts.results / GUEST_JUNIT
            junit.write_text(xml_text)
        kernel_log, problem = self._kernel_log()
        return Ran(status=status, timed_out=status in (124, 137), duration=time.monotonic() - start,
                   output=output, junit=junit, kernel_log=kernel_log, kernel_log_problem=problem,
                   identity=running, description=f"{opts.target}: suite exit {status}",
                   log_tail="\n".join((kernel_log or "").splitlines()[-40:]))

    def _kernel_log(self) -> tuple[str | None, str]:
        """What the run added to dmesg (all of it if the ring buffer wrapped),
        or None and why it cannot be read."""
        status, after = _run(self.client, "dmesg 2>&1", 60) if self._log_status == 0 else (self._log_status, "")
        if status != 0:
            return None, (f"the target's kernel log cannot be read (dmesg exit {status}: "
                          f"{(after or self._log_before).strip()[:200]}); run as root on the target, "
                          f"or set kernel.dmesg_restrict=0")
        before, lines = self._log_before.splitlines(), after.splitlines()
        new = lines[len(before):] if lines[:len(before)] == before else lines
        dmesg = "\n".join(new) + "\n"
        (self.opts.results / "console.log").write_text(dmesg)
        return dmesg, ""

    def close(self) -> None:
        if self.client is None:
            return
        if self.remote_dir:
            # Checked against mktemp's pattern, and quoted: only the
            # directory this run made goes, whatever happened.
            try:
                _run(self.client, f"rm -rf -- {shlex.quote(self.remote_dir)}", 60)
            except Exception:  # the connection may be what failed
                print(f"remote: could not remove {self.remote_dir} on the target", flush=True)
            finally:
                self.remote_dir = ""
                self.client.close()
                self.client = None
            return
        self.client.close()
        self.client = None


def run_remote(opts: RemoteOptions) -> Summary:
    """Connect, upload, run, fetch, judge and report. Always writes the report."""
    opts.results = rotate(opts.results.resolve())
    target = SshTarget(opts, properties={"target": str(opts.target), "accelerator": "none (remote machine)",
                                         "series": ",".join(opts.expect) or "(as running)"})
    stages: list[StageResult] = []
    judged = None
    interrupted = False
    try:
        judged = run_on(target, stages, True, opts.select, opts.timeout)
    except Exception as exc:
        print(record_run_error(stages, exc).render(), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        record_interrupt(stages)
    if judged is not None and judged.ran.identity is not None:
        target.properties.update(judged.ran.identity.properties("kernel"))
    summary = report(opts.results, stages, (*target.setup_stages, target.stage, GUEST_STAGE), judged,
                     target.properties)
    if interrupted:
        raise KeyboardInterrupt
    return summary
