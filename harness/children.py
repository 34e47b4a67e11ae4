"""The one place that starts and stops the long-lived children of a run
(make, virtme-ng with its QEMU, git bisect run).

Each runs in a process group of its own, so that it and everything it
starts (make's compilers, vng's virtme-run and QEMU, bisect steps) can be
stopped together, and so that a terminal's Ctrl-C reaches the harness, which
then stops them in order. A group would outlive a harness that is killed
outright (SIGKILL, the OOM killer, a CI runner ending the job), so each one
is watched by a reaper: a small process in a session of its own that holds
the read end of a pipe only the harness can write. When the harness stops
the group itself it says so on the pipe; when the pipe closes without that
word the harness died, and the reaper kills the group (TERM, then KILL).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import Any

_DONE = b"done\n"
PR_SET_PDEATHSIG = 1


def _die_with(parent: int):
    """A preexec_fn: the child gets SIGTERM when the harness dies
    (PR_SET_PDEATHSIG), and ends at once if it already has."""
    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + signal.SIGTERM)
    return arm


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    """subprocess.run for the short-lived children of a run (git, tar,
    Kconfig's make, checkpatch, gcc for the guest programs): each dies with
    the harness, so a harness killed outright leaves none of them behind.
    The long-lived ones, which start children of their own, run in a Group."""
    return subprocess.run(argv, preexec_fn=_die_with(os.getpid()), **kw)


def kill_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL; wait until nothing is left."""
    _kill_pgid(proc.pid, grace, proc.poll)
    proc.wait()


def _kill_pgid(pgid: int, grace: float, poll=lambda: None) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


class Group:
    """A child in its own process group, with a reaper watching it."""

    def __init__(self, argv: list[str], **popen: Any) -> None:
        self.proc = subprocess.Popen(argv, start_new_session=True, **popen)
        read, self._pipe = os.pipe()
        try:
            self._reaper = subprocess.Popen([sys.executable, "-m", "harness.children", str(self.proc.pid)],
                                            stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True,
                                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        except BaseException:
            kill_group(self.proc)
            os.close(self._pipe)
            raise
        finally:
            os.close(read)

    def stop(self, grace: float = 5.0) -> None:
        """Stop the whole group (also what is left after the leader exited),
        then release the reaper. Safe to call more than once; a second
        Ctrl-C while it runs does not cut the clean-up short."""
        signals = (signal.SIGINT, signal.SIGTERM) if _main_thread() else ()
        old = [signal.signal(sig, signal.SIG_IGN) for sig in signals]
        try:
            kill_group(self.proc, grace)
            if self._pipe >= 0:
                try:
                    os.write(self._pipe, _DONE)
                except OSError:
                    pass
                os.close(self._pipe)
                self._pipe = -1
                try:
                    self._reaper.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._reaper.kill()
                    self._reaper.wait()
        finally:
            for sig, handler in zip(signals, old):
                signal.signal(sig, handler)

    def __enter__(self) -> "Group":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM (a CI runner's, a bisect's) both unwind the run as
    KeyboardInterrupt, so every Group on the way is stopped and the report
    written. Set explicitly: a shell starting us in the background ignores
    SIGINT."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def reap(pgid: int) -> int:
    """The reaper: wait for the harness's word or its death."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a terminal's Ctrl-C is the harness's to handle
    data = b""
    while True:
        chunk = os.read(0, 64)
        if not chunk:
            break
        data += chunk
    if _DONE in data:
        return 0
    _kill_pgid(pgid, 5.0)
    return 0


if __name__ == "__main__":
    sys.exit(reap(int(sys.argv[1])))
