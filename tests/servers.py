"""Real servers on 127.0.0.1 for the e2e suite and bench/: a free port, and
Debian's redis-server in a throw-away directory (ccache's remote storage)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ServerError(RuntimeError):
    """A server the tests need could not be started."""


@contextmanager
def redis_server(data: Path, start_timeout: float = 20) -> Iterator[str]:
    """Start redis-server on a free port with ``data`` as its directory (no
    snapshots); yield its URL once it answers PING; stop it afterwards."""
    server = shutil.which("redis-server")
    if server is None:
        raise ServerError("redis-server is not installed: run 'make deps' (the Makefile installs it)")
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
                             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout
        while not redis_answers(port):
            if proc.poll() is not None:
                raise ServerError(f"redis-server exited at start (exit {proc.returncode})")
            if time.monotonic() > deadline:
                raise ServerError(f"redis-server did not answer within {start_timeout:.0f} s")
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
