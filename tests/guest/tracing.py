"""tracefs events for the guest tests: enabled around a block of code,
their lines read afterwards."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

TRACING = Path("/sys/kernel/tracing")


def tracefs_mounted() -> bool:
    """Mount tracefs on TRACING unless it is there; whether it is now."""
    if not (TRACING / "trace").exists():
        os.makedirs(TRACING, exist_ok=True)
        if os.system(f"mount -t tracefs nodev {TRACING}") != 0:
            return False
    return True


def mount_tracefs() -> None:
    if not tracefs_mounted():
        pytest.fail(f"cannot mount tracefs on {TRACING}")


def kprobe(name: str, symbol: str, ret: bool = False) -> str:
    """A kprobe event kprobes/<name> on the entry of ``symbol`` (on its
    return: a kretprobe, with ``ret``), defined once; returns the event's
    name for Trace."""
    mount_tracefs()
    definitions = TRACING / "kprobe_events"
    if not definitions.exists():
        pytest.fail(f"{definitions} missing (CONFIG_KPROBE_EVENTS off?)")
    if not (TRACING / "events" / "kprobes" / name).is_dir():
        # O_APPEND keeps the other definitions; not open(..., "a"), whose
        # seek to the end a seq_file refuses (EINVAL).
        try:
            fd = os.open(definitions, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, f"{'r' if ret else 'p'}:{name} {symbol}\n".encode())
            finally:
                os.close(fd)
        except OSError as exc:
            pytest.fail(f"cannot probe {symbol}: {exc} (not in the kernel, or not probeable)")
    return f"kprobes/{name}"


class Trace:
    """One tracefs event, enabled for the duration of a `with` block; the
    lines it recorded are in .lines afterwards."""

    def __init__(self, event: str, filter: str = "", clock: str = "", also: tuple[str, ...] = ()):
        self.dir = TRACING / "events" / event
        self.also = [TRACING / "events" / e for e in also]   # more events, unfiltered
        self.filter = filter
        self.clock = clock        # e.g. "mono": timestamps on CLOCK_MONOTONIC
        self.saved_clock = ""
        self.lines: list[str] = []

    def __enter__(self) -> Trace:
        mount_tracefs()
        if self.clock:
            self.saved_clock = re.search(r"\[(\w+)\]", (TRACING / "trace_clock").read_text()).group(1)
            (TRACING / "trace_clock").write_text(self.clock + "\n")
        (TRACING / "tracing_on").write_text("1\n")
        (TRACING / "trace").write_text("")
        if self.filter:
            (self.dir / "filter").write_text(self.filter + "\n")
        for d in [self.dir, *self.also]:
            if not d.is_dir():
                pytest.fail(f"trace event {d.relative_to(TRACING / 'events')} missing")
            (d / "enable").write_text("1\n")
        return self

    def __exit__(self, *exc) -> None:
        for d in [self.dir, *self.also]:
            (d / "enable").write_text("0\n")
        if self.filter:
            (self.dir / "filter").write_text("0\n")
        self.lines = [line for line in (TRACING / "trace").read_text().splitlines() if not line.startswith("#")]
        (TRACING / "trace").write_text("")
        if self.saved_clock:
            (TRACING / "trace_clock").write_text(self.saved_clock + "\n")

    def count(self, pattern: str) -> int:
        return sum(1 for line in self.lines if re.search(pattern, line))

    def times_ns(self, pattern: str) -> list[int]:
        """The timestamps (ns, on the trace clock) of the lines matching."""
        stamps = []
        for line in self.lines:
            if re.search(pattern, line):
                m = re.search(r"\s(\d+)\.(\d{6}):\s", line)
                if m:
                    stamps.append(int(m.group(1)) * 1_000_000_000 + int(m.group(2)) * 1000)
        return stamps
