"""The Reporter: the one place that turns a run's stages, its splat scan and
its guest testcases into junit.xml, summary.json and the printed summary.
``check``, ``test --target`` and ``parse`` all end here."""

from __future__ import annotations

from pathlib import Path

from .junit import build_junit, write_junit
from .outcome import SKIPPED, StageResult
from .summary import Summary, render, summarize, write_json
from .target import Judged


def report(results: Path, stages: list[StageResult], expected: tuple[str, ...], judged: Judged | None,
           properties: dict[str, str]) -> Summary:
    """Write and print the report. Every stage of ``expected`` that did not
    run is reported as skipped ("not reached"); the splat check and the
    guest testcases come from ``judged`` (harness.target.judge): splats only
    when the kernel log was scanned, an ERROR of the splat check when it
    could not be read, the guest testcases only when the guest stage
    trusted them."""
    done = {s.name for s in stages}
    stages = stages + [StageResult(name, SKIPPED, 0.0, "not reached") for name in expected if name not in done]
    xml = build_junit(stages, judged.splats if judged else [], judged.scanned if judged else False, properties,
                      judged.guest_junit if judged else None, judged.unscanned if judged else "",
                      judged.collected if judged else ())
    write_junit(xml, results / "junit.xml")
    summary = summarize(xml)
    write_json(summary, results / "summary.json")
    print(render(summary, results), flush=True)
    return summary
