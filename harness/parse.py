"""``isolharness parse CONSOLE [GUEST_JUNIT]``: judge saved logs again, as
kunit_tool's ``parse`` does, so that a fixed splat scanner or verdict rule
can re-judge an old run. The saved files become the Ran a target would have
handed back (harness.target) and go through the same judge: the boot (the
kernel started, the guest command started, the command line was not cut),
the splat scan of the console, the guest stage's cross-check of the guest
pytest's status and JUnit file, then the report."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import HarnessError
from .guest_verdict import count_cases
from .identity import console_banners, parse_banner, parse_identity_line
from .outcome import PASSED, StageResult
from .results import rotate
from .report import report
from .summary import Summary
from .collection import TestCollection
from .target import Ran, judge
from .vm import COMMAND_LINE_SIZE, START_MARKER, cut_command_line
from .vm_target import CONSOLE_TAIL_LINES


def parse_logs(console: Path, guest_junit: Path | None, status: int | None, results: Path,
               output: Path | None = None, collections: tuple[TestCollection, ...] = ()) -> Summary:
    """``status`` is the guest pytest's exit status when known; without it
    the JUnit file's own testcases decide whether it was 0 or 1. ``output``
    (the guest-output.log beside the console, by default) shows whether the
    guest command started. ``collections`` re-read the KUnit results of the
    console and saved kselftest output."""
    start = time.monotonic()
    if not console.is_file():
        raise HarnessError(f"{console} does not exist", hint="pass the console.log of a run")
    if guest_junit is not None and not guest_junit.is_file():
        raise HarnessError(f"{guest_junit} does not exist", hint="pass the guest-junit.xml of a run, or omit it")
    if output is None and (console.parent / "guest-output.log").is_file():
        output = console.parent / "guest-output.log"
    text = console.read_text(errors="replace")
    said = output.read_text(errors="replace") if output is not None and output.is_file() else None
    results = rotate(results.resolve())
    stages = [StageResult("parse", PASSED, time.monotonic() - start, f"re-judged {console}")]
    props = {"parsed_console": str(console.resolve())}
    # A VM's console (its first line is vng's command) holds the boot; a
    # --target's holds only the dmesg lines of the run, without a banner.
    vm = text.startswith("# ")
    banners = console_banners(text)
    identity = (parse_identity_line(said) if said else None) or (parse_banner(banners[0]) if banners else None)
    if identity is not None:
        props.update(identity.properties("kernel"))
    if status is None:
        try:
            status = 1 if guest_junit is not None and count_cases(guest_junit).failing else 0
        except Exception:
            status = 0  # the guest stage says the file cannot be read
    ran = Ran(status=status, timed_out=False, duration=0.0, output=output or console.parent / "guest-output.log",
              junit=guest_junit, kernel_log=text, started=bool(banners) or not vm,
              start_problem="the console shows no kernel banner: the kernel did not start",
              reached_command=said is None or not vm or START_MARKER in said,
              untrusted=(f"the kernel command line filled COMMAND_LINE_SIZE ({COMMAND_LINE_SIZE}) and was cut"
                         if cut_command_line(text) else ""),
              log_tail="\n".join(text.splitlines()[-CONSOLE_TAIL_LINES:]))
    judged = judge("boot", ran, stages, guest_junit is not None, None, 0.0, collections)
    return report(results, stages, ("boot", "guest") if guest_junit is not None else ("boot",), judged, props)
