"""Mutation testing of the guest suite: each patch in tests/e2e/mutants/
breaks one rule of the interface on top of the default series; the suite
must fail on it, and fail in the tests the patch names.

A mutant is a git format-patch file whose changelog carries the rule it
breaks and the tests that must catch it, one per line:

    Breaks: INTERFACE.md PR_ISOL_SET: a mask with an unknown bit is EINVAL ...
    Killed-by: tests/guest/test_task_isolation.py::test_a_refused_call_changes_nothing

A mutant that only a differently configured kernel compiles (a stub for
CONFIG_..._=n, say) names the fragments that build it, after the defaults:

    Kconfig: no-task-isolation

A name without ``[params]`` is caught when any of its instances fails. Each
mutant is run as a third series, always from the same directory (so one
worktree and one build directory serve every mutant, and the harness's
prefix reuse rebuilds only what the mutant and the one before it touched),
with ``isolharness check``:

- killed: the check exits 1 and every named test failed;
- killed by others: it exits 1, but some named test passed (the test that
  is meant to catch it does not, or the names are out of date);
- survived: it exits 0;
- invalid: the mutant did not apply or build, or the harness failed (exit 2).

Usage: python tests/mutation.py [--work DIR] [--all-tests] [--cache DIR] [MUTANT...]
Exit 0 only when every mutant run was killed by its named tests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Error, Failure, JUnitXml

from harness.junit import CONSOLE_SUITE, STAGES_SUITE
from harness.outcome import PASSED, SKIPPED
from harness.series import DEFAULT_LIST, parse_series_text
from harness.summary import summarize

PROJECT = Path(__file__).resolve().parents[1]
MUTANTS = PROJECT / "tests" / "e2e" / "mutants"
ISOLHARNESS = Path(sys.executable).parent / "isolharness"

SERIES_MARKER = ".isolharness-mutant"
KILLED, KILLED_BY_OTHERS, SURVIVED, INVALID = "killed", "killed by others", "survived", "invalid"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: Path
    breaks: str
    killed_by: tuple[str, ...]
    kconfig: tuple[str, ...] = ()    # fragments after base and isolation (a 'Kconfig:' line)


@dataclass
class MutantResult:
    mutant: Mutant
    status: str
    exit_code: int
    seconds: float
    failed: set[str] = field(default_factory=set)
    missed: tuple[str, ...] = ()      # named tests that did not fail
    reason: str = ""
    build_id: str = ""                # of the kernel that booted (the run's kernel_build_id property)


class MutantError(Exception):
    """A mutant file that cannot be used."""


def load_mutant(path: Path) -> Mutant:
    text = path.read_text()
    header = text.split("\n---\n", 1)[0]
    breaks = re.findall(r"^Breaks: (.+)$", header, re.M)
    killed_by = tuple(re.findall(r"^Killed-by: (\S+)$", header, re.M))
    if not breaks or not killed_by:
        raise MutantError(f"{path}: needs a 'Breaks:' line and at least one 'Killed-by:' line in its changelog")
    for name in killed_by:
        where = name.split("::", 1)[0]
        if "::" not in name or not (where.endswith(".py") or kunit_suite(name)):
            raise MutantError(f"{path}: Killed-by {name!r} is neither FILE.py::TEST nor kunit.SUITE::CASE")
    kconfig = tuple(name for line in re.findall(r"^Kconfig: (.+)$", header, re.M) for name in line.split())
    return Mutant(path.stem, path, breaks[0], killed_by, kconfig)


def load_mutants(directory: Path = MUTANTS, names: list[str] | None = None) -> list[Mutant]:
    paths = sorted(directory.glob("*.patch"))
    if names:
        chosen = [p for p in paths if p.stem in names or any(p.stem.startswith(n) for n in names)]
        unknown = [n for n in names if not any(p.stem == n or p.stem.startswith(n) for p in paths)]
        if unknown:
            raise MutantError(f"no mutant named {', '.join(unknown)} in {directory}")
        paths = chosen
    return [load_mutant(p) for p in paths]


def test_id(classname: str, name: str) -> str:
    """``module::test[param]`` from a JUnit case (pytest's classname is the
    dotted module path, as deep as the guest's rootdir makes it)."""
    return f"{classname.rsplit('.', 1)[-1]}::{name}"


def kunit_suite(killed_by: str) -> str:
    """The KUnit suite of a ``kunit.SUITE::CASE`` name, or ""."""
    where = killed_by.split("::", 1)[0]
    return where[len("kunit."):] if where.startswith("kunit.") else ""


def named_id(killed_by: str) -> str:
    """What test_id() gives the named test's JUnit case: module::test for a
    guest test, SUITE::CASE for a KUnit case (JUnit suite kunit.SUITE)."""
    path, _, test = killed_by.partition("::")
    return f"{kunit_suite(killed_by) or Path(path).stem}::{test}"


def failed_guest_tests(xml: JUnitXml) -> set[str]:
    failed = set()
    for suite in xml:
        if suite.name in (STAGES_SUITE, CONSOLE_SUITE):
            continue
        for case in suite:
            if any(isinstance(r, (Failure, Error)) for r in case.result):
                failed.add(test_id(case.classname or "", case.name or ""))
    return failed


def caught(named: str, failed: set[str]) -> bool:
    want = named_id(named)
    if "[" in want:
        return want in failed
    return any(f == want or f.startswith(want + "[") for f in failed)


def read_junit(junit: Path) -> JUnitXml | None:
    return JUnitXml.fromfile(str(junit)) if junit.is_file() else None


def judge(mutant: Mutant, exit_code: int, xml: JUnitXml | None) -> tuple[str, set[str], tuple[str, ...], str]:
    """(status, failed tests, named tests that did not fail, reason)."""
    if exit_code == 0:
        return SURVIVED, set(), mutant.killed_by, "the suite passed"
    if exit_code != 1 or xml is None:
        return INVALID, set(), (), f"isolharness exited {exit_code}" + ("" if xml is not None else ", no junit.xml")
    stage = next((st.name for st in summarize(xml).stages if st.status not in (PASSED, SKIPPED)), "")
    if stage in ("prepare", "config", "build"):
        return INVALID, set(), (), f"the {stage} stage failed: the mutant is not a kernel the suite can judge"
    failed = failed_guest_tests(xml)
    missed = tuple(n for n in mutant.killed_by if not caught(n, failed))
    if missed:
        return KILLED_BY_OTHERS, failed, missed, "named tests passed: " + ", ".join(missed)
    return KILLED, failed, (), ""


def default_series() -> list[str]:
    default = PROJECT / "patches" / DEFAULT_LIST
    return parse_series_text(default.read_text(), str(default))


def check(args: list[str], log: Path, env: dict[str, str]) -> int:
    with log.open("w") as out:
        return subprocess.run([str(ISOLHARNESS), "check", *args], cwd=PROJECT, stdout=out,
                              stderr=subprocess.STDOUT, env=env).returncode


def selection(mutant: Mutant) -> str:
    """-k for the guest tests the mutant names; KUnit cases run at every
    boot, so a mutant named only by them runs the smoke tests (a guest
    suite that selects nothing is an error of the run)."""
    names = {named_id(n).split("::", 1)[1].split("[", 1)[0] for n in mutant.killed_by if not kunit_suite(n)}
    return " or ".join(sorted(names)) or "smoke"


def run_mutant(mutant: Mutant, work: Path, common: list[str], env: dict[str, str], only_named: bool) -> MutantResult:
    series_dir = work / "mutant"      # one name for every mutant: one worktree, one build directory
    if series_dir.exists():
        if not (series_dir / SERIES_MARKER).is_file():
            raise MutantError(f"{series_dir} exists and was not made by this runner; refusing to replace it")
        shutil.rmtree(series_dir)
    series_dir.mkdir(parents=True)
    (series_dir / SERIES_MARKER).write_text("made by tests/mutation.py: replaced by the next mutant\n")
    shutil.copy2(mutant.path, series_dir / mutant.path.name)
    (series_dir / "series").write_text(mutant.path.name + "\n")
    results = work / "results" / mutant.name
    args = [*common, "--series", str(series_dir), "--results", str(results)]
    if mutant.kconfig:
        args += [arg for name in ("base", "isolation", *mutant.kconfig) for arg in ("--kconfig", name)]
    if only_named:
        args += ["-k", selection(mutant)]
    start = time.monotonic()
    code = check(args, work / f"{mutant.name}.log", env)
    xml = read_junit(results / "junit.xml")
    status, failed, missed, reason = judge(mutant, code, xml)
    build_id = summarize(xml).properties.get("kernel_build_id", "") if xml is not None else ""
    return MutantResult(mutant, status, code, time.monotonic() - start, failed, missed, reason, build_id)


def stale(result: MutantResult, booted: dict[str, str]) -> str:
    """The earlier run whose kernel this one booted, if any: every mutant is
    a different kernel, so two runs booting one build-id means a stale boot."""
    if result.build_id and result.build_id in booted:
        return booted[result.build_id]
    return ""


def report(results: list[MutantResult]) -> str:
    killed = sum(1 for r in results if r.status == KILLED)
    lines = [f"{r.mutant.name}: {r.status} ({r.seconds:.0f} s)" + (f" - {r.reason}" if r.reason else "")
             for r in results]
    lines.append(f"mutation score: {killed}/{len(results)} killed by the tests they name")
    survivors = [r.mutant.name for r in results if r.status != KILLED]
    lines.append("survivors: " + (", ".join(survivors) if survivors else "none"))
    ids = [r.build_id for r in results if r.build_id]
    lines.append(f"kernels booted: {len(set(ids))} distinct build-ids in {len(results)} incremental rebuilds"
                 + ("" if len(ids) == len(results) else f" ({len(results) - len(ids)} without one)"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mutation", description=__doc__.split("\n\n")[0])
    p.add_argument("mutants", nargs="*", metavar="MUTANT", help="names (or name prefixes) of tests/e2e/mutants/*.patch")
    p.add_argument("--work", type=Path, default=PROJECT / "results" / "mutants",
                   help="where the series directory, logs and results go (default results/mutants)")
    p.add_argument("--cache", help="isolharness cache (default: the harness's)")
    p.add_argument("--all-tests", action="store_true",
                   help="run the whole guest suite on each mutant (default: only the tests it names, with -k)")
    p.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated series")
    args = p.parse_args(argv)
    try:
        mutants = load_mutants(MUTANTS, args.mutants)
    except MutantError as exc:
        print(f"mutation: {exc}", file=sys.stderr)
        return 2
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    common = [arg for s in default_series() for arg in ("--series", s)]
    if args.cache:
        common += ["--cache", args.cache]
    booted: dict[str, str] = {}      # build-id -> the run that booted it
    if not args.no_baseline:
        baseline = work / "results" / "baseline"
        code = check([*common, "--results", str(baseline)], work / "baseline.log", env)
        print(f"baseline (the series unmutated): exit {code}", flush=True)
        if code != 0:
            print(f"mutation: the suite does not pass on the series itself (see {work / 'baseline.log'}); "
                  "mutants would prove nothing", file=sys.stderr)
            return 2 if code != 1 else 1
        xml = read_junit(baseline / "junit.xml")
        build_id = summarize(xml).properties.get("kernel_build_id", "") if xml is not None else ""
        if build_id:
            booted[build_id] = "baseline"
    results = []
    for mutant in mutants:
        try:
            result = run_mutant(mutant, work, common, env, not args.all_tests)
        except MutantError as exc:
            print(f"mutation: {exc}", file=sys.stderr)
            return 2
        earlier = stale(result, booted)
        if earlier:
            result.status, result.reason = INVALID, f"booted the kernel of {earlier} (build-id {result.build_id})"
        elif result.build_id:
            booted[result.build_id] = mutant.name
        print(f"{mutant.name}: {result.status} ({result.seconds:.0f} s)"
              + (f" - {result.reason}" if result.reason else ""), flush=True)
        results.append(result)
    text = report(results)
    (work / "report.txt").write_text(text + "\n")
    print(text)
    if any(r.status == INVALID for r in results):
        return 2
    return 0 if all(r.status == KILLED for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
