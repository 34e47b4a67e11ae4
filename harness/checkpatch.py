"""Style: the kernel's own scripts/checkpatch.pl --strict on every patch of
the series, from the tree it applies to. One StageResult per patch; a patch
with errors, warnings or (strict) checks fails with checkpatch's report."""

from __future__ import annotations

import re
import time
from pathlib import Path

from . import children
from .errors import HarnessError
from .outcome import FAILED, PASSED, StageResult
from .series import Series

TOTAL = re.compile(r"total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?(\d+) lines checked")


def totals(report: str) -> tuple[int, int, int] | None:
    """(errors, warnings, checks) from checkpatch's "total:" line."""
    m = TOTAL.search(report)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check_series(tree: Path, series: list[Series]) -> list[StageResult]:
    script = tree / "scripts" / "checkpatch.pl"
    if not script.is_file():
        raise HarnessError(f"{script} not found: the tree is not a kernel tree with scripts/")
    stages = []
    patches = [p for s in series for p in s.patches]
    for i, patch in enumerate(patches, 1):
        start = time.monotonic()
        res = children.run(["perl", str(script), "--strict", "--color=never",
                              "--show-types", str(patch.path)],
                             cwd=tree, capture_output=True, text=True)
        report = res.stdout.strip()
        name = f"checkpatch {i:02d}/{len(patches):02d}"
        counts = totals(report)
        if counts is None:
            stages.append(StageResult(name, FAILED, time.monotonic() - start,
                                      f"{patch.name}: checkpatch did not finish (exit {res.returncode})",
                                      (report + "\n" + res.stderr.strip())[-4000:]))
            continue
        errors, warnings, checks = counts
        summary = f"{patch.name}: {errors} errors, {warnings} warnings, {checks} checks"
        failed = res.returncode != 0 or errors or warnings or checks
        stages.append(StageResult(name, FAILED if failed else PASSED, time.monotonic() - start, summary,
                                  report[-4000:] if failed else ""))
    return stages
