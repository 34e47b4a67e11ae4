"""Progress for long stages: a redrawn status line on a terminal, periodic
heartbeat lines otherwise (CI logs must not fill up with carriage returns)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

HEARTBEAT_SECONDS = 30.0


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    def __init__(self, stage: str, stream: TextIO | None = None, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.stage = stage
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.heartbeat = heartbeat
        self.start = time.monotonic()
        self._last_beat = self.start
        self._last_draw = 0.0
        self._drawn = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def update(self, status: str, force: bool = False) -> None:
        now = time.monotonic()
        line = f"{self.stage}: {status} [{fmt_duration(now - self.start)}]"
        if self.tty:
            if force or now - self._last_draw >= 0.2:
                self.stream.write("\r\x1b[K" + line[:200])
                self.stream.flush()
                self._last_draw = now
                self._drawn = True
        elif force or now - self._last_beat >= self.heartbeat:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_beat = now

    def done(self, status: str) -> None:
        line = f"{self.stage}: {status} [{fmt_duration(self.elapsed)}]"
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()
