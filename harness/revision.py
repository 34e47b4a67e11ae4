"""``isolharness series``: one revision of a series, the way a CI bot tests
it. The input is an mbox, a series directory, or a git range of --ksrc; the
run is ``check`` plus checkpatch --strict and a build after every patch, and
with ``--baseline`` a comparison against the previous revision's summary."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from . import git as g
from .baseline import compare, load_summary_json, render_comparison
from .cache import cache_dir
from .ccache import remote_setting
from .checkpatch import check_series
from .errors import HarnessError
from .kconfig import KernelConfig
from .outcome import EXIT_ERROR, EXIT_FAILED, StageResult
from .pipeline import Prepared, RunOptions, check
from .series import SERIES_FILE
from .walk import build_each


def series_from_range(ksrc: Path, spec: str, cache: Path) -> tuple[Path, str]:
    """``A..B`` of the user's tree as a series directory in the cache (via
    git format-patch, which only reads the tree) and the base revision A."""
    start, _, end = spec.partition("..")
    if not start or not end or end.startswith("."):
        raise HarnessError(f"'{spec}' is not a range", hint="give BASE..TOP, e.g. v6.12..my-series-v3")
    commits = []
    for rev in (start, end):
        if not g.git_ok(ksrc, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"):
            raise HarnessError(f"{ksrc}: unknown revision '{rev}' in range '{spec}'")
        commits.append(g.rev_parse(ksrc, f"{rev}^{{commit}}"))
    count = int(g.git(ksrc, "rev-list", "--count", f"{commits[0]}..{commits[1]}").strip())
    if count == 0:
        raise HarnessError(f"empty series: {spec} has no commits")
    if g.git(ksrc, "rev-list", "--merges", f"{commits[0]}..{commits[1]}").strip():
        raise HarnessError(f"{spec} contains merge commits; a series must be a linear history")
    digest = hashlib.sha256(f"{commits[0]}..{commits[1]}".encode()).hexdigest()[:16]
    directory = cache / "range" / f"range-{digest}"
    if not (directory / SERIES_FILE).is_file():
        tmp = directory.with_name(directory.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted run
        g.git(ksrc, "format-patch", "-q", "--zero-commit", "-o", str(tmp), f"{commits[0]}..{commits[1]}")
        names = sorted(p.name for p in tmp.glob("*.patch"))
        (tmp / SERIES_FILE).write_text("".join(f"{n}\n" for n in names))
        tmp.rename(directory)
    return directory, commits[0]


def resolve_input(spec: str, opts: RunOptions) -> None:
    """Point opts at the series to test (and, for a range, at its base)."""
    path = Path(spec)
    if path.is_file() or path.is_dir():
        opts.series = [str(path)]
        return
    if ".." in spec:
        if opts.ksrc is None:
            raise HarnessError(f"'{spec}' looks like a git range, which needs --ksrc TREE")
        directory, base = series_from_range(opts.ksrc.resolve(), spec, cache_dir(opts.cache))
        opts.series, opts.rev = [str(directory)], base
        return
    raise HarnessError(f"series input '{spec}' is neither a file, a directory nor a git range",
                       hint="an mbox (git format-patch --stdout), a directory with a series file, "
                            "or BASE..TOP with --ksrc")


def run_series(opts: RunOptions, spec: str, baseline: Path | None) -> int:
    if opts.series is not None:
        raise HarnessError("isolharness series takes the series as its argument, not --series",
                           hint="isolharness series v3.mbox (the default series are not applied under it)")
    previous = load_summary_json(baseline) if baseline is not None else None
    resolve_input(spec, opts)

    def per_patch(prep: Prepared, kcfg: KernelConfig, stages: list[StageResult]) -> None:
        stages.extend(check_series(prep.tree.path, list(prep.series)))
        build_each(prep.tree, kcfg, prep.cache, opts.results, opts.jobs, remote_setting(opts.ccache_remote),
                   stages)

    run = check(opts, after_config=per_patch)
    status = run.summary.exit_status
    if previous is not None:
        cmp = compare(previous, run.summary)
        print(render_comparison(cmp, baseline), flush=True)
        (opts.results / "comparison.json").write_text(json.dumps(asdict(cmp), indent=2) + "\n")
        if cmp.regression and status != EXIT_ERROR:
            status = EXIT_FAILED
    return status
