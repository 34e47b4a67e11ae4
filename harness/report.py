"""The Reporter: the one place that turns a run's stages, its splat scan and
its guest testcases into junit.xml, summary.json and the printed summary.
``check``, ``test --target`` and ``parse`` all end here."""

from __future__ import annotations

from pathlib import Path

from .console import Splat
from .junit import build_junit, write_junit
from .outcome import SKIPPED, StageResult
from .summary import Summary, render, summarize, write_json


def report(results: Path, stages: list[StageResult], expected: tuple[str, ...], splats: list[Splat],
           scanned: bool, properties: dict[str, str], guest_xml: Path | None) -> Summary:
    """Write and print the report. Every stage of ``expected`` that did not
    run is reported as skipped ("not reached"); ``splats`` count only when
    ``scanned``; ``guest_xml`` only when the guest stage trusted it."""
    done = {s.name for s in stages}
    stages = stages + [StageResult(name, SKIPPED, 0.0, "not reached") for name in expected if name not in done]
    xml = build_junit(stages, splats, scanned, properties, guest_xml)
    write_junit(xml, results / "junit.xml")
    summary = summarize(xml)
    write_json(summary, results / "summary.json")
    print(render(summary, results), flush=True)
    return summary
