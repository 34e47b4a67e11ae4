"""``isolharness parse CONSOLE [GUEST_JUNIT]``: judge saved logs again, as
kunit_tool's ``parse`` does, so that a fixed splat scanner or verdict rule
can re-judge an old run: the splat scan of the console, the guest stage's
cross-check of the guest pytest's status and JUnit file, the report."""

from __future__ import annotations

import time
from pathlib import Path

from .console import scan
from .errors import HarnessError
from .guest_verdict import count_cases, judge_guest
from .identity import console_banners, parse_banner
from .outcome import PASSED, StageResult
from .results import rotate
from .report import report
from .summary import Summary


def parse_logs(console: Path, guest_junit: Path | None, status: int | None, results: Path,
               output: Path | None = None) -> Summary:
    """``status`` is the guest pytest's exit status when known; without it
    the JUnit file's own testcases decide whether it was 0 or 1."""
    start = time.monotonic()
    if not console.is_file():
        raise HarnessError(f"{console} does not exist", hint="pass the console.log of a run")
    if guest_junit is not None and not guest_junit.is_file():
        raise HarnessError(f"{guest_junit} does not exist", hint="pass the guest-junit.xml of a run, or omit it")
    text = console.read_text(errors="replace")
    results = rotate(results.resolve())
    stages = [StageResult("parse", PASSED, time.monotonic() - start, f"re-judged {console}")]
    props = {"parsed_console": str(console.resolve())}
    banners = console_banners(text)
    if banners:
        props.update(parse_banner(banners[0]).properties("kernel"))
    trusted = False
    if guest_junit is not None:
        if status is None:
            try:
                status = 1 if count_cases(guest_junit).failing else 0
            except Exception:
                status = 0  # the guest stage says the file cannot be read
        guest, trusted = judge_guest(status, guest_junit, output, None)
        stages.append(guest)
    return report(results, stages, (), scan(text), True, props, guest_junit if trusted else None)
