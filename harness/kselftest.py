"""kselftest targets: built and installed on the host against the kernel
build (make -C tools/testing/selftests O=<build> install, one install
directory per target), run in the guest after the pytest suite with each
target's own run_kselftest.sh (per-test timeouts from the target's
``settings`` file), their TAP output parsed with the tree's
tools/testing/kunit/kunit_parser.py into JUnit suites ``kselftest.<target>``.

A series names the targets it adds in ``patches/<series>/kselftest``, each
with the option that gates it (``task_isolation CONFIG_TASK_ISOLATION``);
``--kselftest TARGET`` adds upstream ones. A target of an applied or
expected series that the tree lacks is an ERROR ("expected but absent"),
never a skip; one that does not build is a failure of the series. A case
of a series target that skips on a kernel with its option set tested
nothing it should have: a failure. Upstream targets keep their skips; one
that the tree lacks or that does not build (a missing library) is an
ERROR of the environment.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Error, Failure, Skipped, TestCase, TestSuite

from . import children
from .errors import ENVIRONMENT_HINT, EnvironmentFault, HarnessError, environment_fault
from .junit import case_of, suite_of
from .kunit import PANIC, load_parser

SUITE_PREFIX = "kselftest."
LISTING = "kselftest"                    # patches/<series>/kselftest
SELFTESTS = Path("tools/testing/selftests")
RUNNER = "run_kselftest.sh"
BUILD_TIMEOUT = 900
LOG_LINES = 40
_TARGET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
_PROGRAM_START = re.compile(r"^# selftests: (\S+): (\S+)$")
# A program's result, also at the end of a last output line it left unfinished
_PROGRAM_RESULT = re.compile(r"((?:not )?ok) \d+ selftests: (\S+): (\S+)(?: # (.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)")
# kselftest.h's results carry no name: "ok 3 # SKIP why"
_UNNAMED = re.compile(r"^((?:not )?ok) (\d+) #(.*)$")
_SKIP_REASON = re.compile(r"#\s+SKIP\s+(.*)$")


@dataclass(frozen=True)
class SeriesTarget:
    name: str          # tools/testing/selftests/<name>
    option: str        # the Kconfig option that gates it ("" for none)
    series: str


@dataclass(frozen=True)
class KselftestRequest:
    """What to build and run, and what must come back."""
    tree: Path
    build_dir: Path                          # the kernel's O= directory (its usr/include)
    install: Path                            # one directory per target, shared with the guest
    series_targets: tuple[SeriesTarget, ...] = ()
    upstream: tuple[str, ...] = ()           # --kselftest TARGET
    kconfig: Path | None = None              # the kernel's .config

    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([t.name for t in self.series_targets] + list(self.upstream)))

    def output(self, target: str) -> Path:
        return self.install / f"{target.replace('/', '-')}.tap"


@dataclass(frozen=True)
class Installed:
    built: tuple[str, ...] = ()
    problems: dict[str, str] = field(default_factory=dict)   # target: why it was not built
    absent: tuple[str, ...] = ()                             # of those, the targets the tree lacks


def check_target_name(name: str) -> str:
    """A --kselftest argument: a directory under tools/testing/selftests."""
    if not _TARGET.match(name) or ".." in name.split("/"):
        raise ValueError(f"--kselftest {name!r}: not a directory name under {SELFTESTS}")
    return name


def series_targets(series: list[tuple[str, Path]]) -> tuple[SeriesTarget, ...]:
    """The kselftest targets the series declare: (name, the series'
    directory) each, whose ``kselftest`` file lists them."""
    out: list[SeriesTarget] = []
    for name, directory in series:
        listing = directory / LISTING
        if not listing.is_file():
            continue
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2 or not words[1].startswith("CONFIG_"):
                raise HarnessError(f"{listing}:{n}: {line.strip()!r}: each line names a target and the option "
                                   f"that gates it (task_isolation CONFIG_TASK_ISOLATION)")
            out.append(SeriesTarget(words[0], words[1], name))
    return tuple(out)


def install(req: KselftestRequest, log: Path) -> Installed:
    """Build and install each target on the host. A target the tree lacks,
    or whose build fails, is recorded, not raised: it is reported as a
    testcase. Raises EnvironmentFault when make cannot be run at all."""
    built, absent, problems = [], [], {}
    selftests = req.tree / SELFTESTS
    env = {**os.environ, "LC_ALL": "C"}
    with log.open("a") as out:
        for target in req.targets():
            if not (selftests / target / "Makefile").is_file():
                problems[target] = f"{SELFTESTS / target} is not in the tree {req.tree}"
                absent.append(target)
                continue
            dest = req.install / target
            argv = ["make", "-C", str(selftests), f"O={req.build_dir}", f"TARGETS={target}",
                    f"KSFT_INSTALL_PATH={dest}", "install"]
            out.write(f"$ {shlex.join(argv)}\n")
            out.flush()
            try:
                res = children.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", timeout=BUILD_TIMEOUT, env=env)
            except FileNotFoundError as exc:
                raise EnvironmentFault(f"cannot run make for the kselftests: {exc}") from exc
            except subprocess.TimeoutExpired:
                problems[target] = f"make install did not finish in {BUILD_TIMEOUT}s"
                continue
            out.write(res.stdout)
            fault = environment_fault(res.stdout) if res.returncode != 0 else ""
            if fault:
                raise EnvironmentFault(f"building kselftest {target}: {fault}", hint=ENVIRONMENT_HINT)
            if res.returncode != 0 or not (dest / RUNNER).is_file():
                tail = "\n".join(res.stdout.splitlines()[-15:])
                problems[target] = f"make install failed (exit {res.returncode}):\n{tail}"
                continue
            built.append(target)
    return Installed(tuple(built), problems, tuple(absent))


def guest_command(req: KselftestRequest, installed: Installed) -> str:
    """Shell commands running each installed target in the guest, its TAP
    output into the shared directory (through a pipe: the runner's prefixer
    and its own echo write one file at two offsets otherwise)."""
    if not installed.built:
        return ""
    # The runner writes each program's output to /dev/stdout (runner.sh's
    # logfile), which in the guest is virtme-ng's console port, not this
    # command's standard output: pointed at the pipe while they run, then
    # back. Should that fail, the programs' lines are missing from their
    # output and each series program is an error for it.
    parts = ['isolharness_stdout=$(readlink /dev/stdout)',
             'if [ "$isolharness_stdout" = /proc/self/fd/1 ]; then isolharness_stdout=; '
             'else ln -sfn /proc/self/fd/1 /dev/stdout || echo "isolharness: cannot point /dev/stdout at the '
             'kselftest output" >&2; fi']
    for target in installed.built:
        parts.append(f"(cd {shlex.quote(str(req.install / target))} && ./{RUNNER}) 2>&1 | cat > "
                     f"{shlex.quote(str(req.output(target)))}")
    parts.append('[ -z "$isolharness_stdout" ] || ln -sfn "$isolharness_stdout" /dev/stdout')
    return "; ".join(parts)


# ---------------------------------------------------------------- parsing

@dataclass
class Program:
    """One test program's part of run_kselftest.sh's output."""
    collection: str                                  # its directory under tools/testing/selftests
    name: str
    lines: list[str] = field(default_factory=list)   # its own output, the runner's "# " removed
    ok: bool | None = None                           # its result line; None: none came
    directive: str = ""                              # "SKIP ...", "TIMEOUT 45 seconds", "exit=1"

    def case_name(self, target: str) -> str:
        return self.name if self.collection == target else f"{self.collection}:{self.name}"


@dataclass
class RunnerOutput:
    programs: list[Program]
    planned: int | None                              # the runner's own 1..N


def programs(lines: list[str]) -> RunnerOutput:
    """Split the runner's TAP by program. Each program's own (K)TAP is
    parsed apart: kunit_parser would take the runner's next result line
    for a nested stream's missing one."""
    out: list[Program] = []
    planned = None
    current: Program | None = None
    for line in lines:
        if m := _PROGRAM_START.match(line):
            current = Program(m.group(1), m.group(2))
            out.append(current)
        elif current is not None and (m := _PROGRAM_RESULT.search(line)) \
                and (m.group(2), m.group(3)) == (current.collection, current.name):
            head = line[:m.start(1)]
            if head.startswith("# "):
                current.lines.append(head[2:])
            current.ok = m.group(1) == "ok"
            current.directive = (m.group(4) or "").strip()
            current = None
        elif current is not None and (line.startswith("# ") or line == "#"):
            current.lines.append(_named(line[2:]))
        elif current is None and planned is None and (m := _PLAN.match(line)):
            planned = int(m.group(1))
    return RunnerOutput(out, planned)


def _named(line: str) -> str:
    """kselftest.h's unnamed results named by their number, so that the
    KTAP parser does not take them for placeholders of missing results."""
    if m := _UNNAMED.match(line):
        result, number, directive = m.groups()
        skip = re.match(r"\s*SKIP\s+(\S.*)$", directive)
        # ksft_test_result_skip()'s message names what was skipped
        name = skip.group(1).strip() if skip else f"({number})"
        return f"{result} {number} {name} #{directive}"
    return line


def _case(target: str, name: str, result=None, message: str = "", text: str = "") -> TestCase:
    return case_of(name, f"{SUITE_PREFIX}{target}", result, message, text)


def _suite(target: str, cases: list[TestCase]) -> TestSuite:
    return suite_of(f"{SUITE_PREFIX}{target}", cases)


def _failure_line(log: list[str]) -> str:
    """The first line that says what failed (kselftest_harness's
    "file:line:test:Expected ..."), else the last one."""
    lines = [ln.strip() for ln in log if ln.strip()]
    found = next((ln for ln in lines if ":Expected " in ln or "FAIL" in ln), "")
    return (found or (lines[-1] if lines else "failed")).lstrip("# ").strip()


def _skip_reason(log: list[str], default: str = "skipped") -> str:
    return next((m.group(1).strip() for ln in log if (m := _SKIP_REASON.search(ln))), default)


def _skip_case(target: str, name: str, reason: str, option_set: str) -> TestCase:
    if option_set:
        return _case(target, name, Failure, f"skipped on a kernel with {option_set}: {reason}")
    return _case(target, name, Skipped, reason)


def _program_cases(parser, target: str, prog: Program, option_set: str, series: bool,
                   crashed: str) -> list[TestCase]:
    status = parser.TestStatus
    name = prog.case_name(target)
    out: list[TestCase] = []
    cut = False
    if any(ln.startswith(("TAP version", "KTAP version")) for ln in prog.lines):
        top = parser.parse_run_tests(prog.lines)
        for sub in top.subtests:
            if not sub.name:
                cut = True      # the parser's placeholder for a result that never came
                continue
            case = f"{name}/{sub.name}"
            if sub.status == status.SUCCESS:
                out.append(_case(target, case))
            elif sub.status == status.SKIPPED:
                out.append(_skip_case(target, case, _skip_reason(sub.log, sub.name), option_set))
            else:
                out.append(_case(target, case, Failure, _failure_line(sub.log), "\n".join(sub.log[-LOG_LINES:])))
        cut = cut or top.status == status.TEST_CRASHED
    tail = "\n".join(prog.lines[-LOG_LINES:])
    failed_inside = any(c.result and isinstance(c.result[0], Failure) for c in out)
    if prog.ok is None:
        if crashed:
            out.append(_case(target, name, Failure, f"{name}: the output ended before its result: {crashed}", tail))
        else:
            out.append(_case(target, name, Error, f"{name}: the output ended before its result "
                                                  f"(for no reason the kernel log shows)", tail))
    elif prog.directive.startswith("TIMEOUT"):
        out.append(_case(target, name, Failure, f"{name}: {prog.directive}", tail))
    elif prog.directive.startswith("SKIP"):
        # The program skipped (exit 4), after any cases it ran
        out.append(_skip_case(target, name, prog.directive[4:].strip() or _skip_reason(prog.lines), option_set))
    elif cut:
        # Its plan promised more results than came, whatever its exit status
        out.append(_case(target, name, Failure, f"{name}: its results stopped before its plan's end", tail))
    elif not prog.ok and not failed_inside:
        # A crash after the last case, an exit status the cases do not explain
        out.append(_case(target, name, Failure, f"{name}: {prog.directive or _failure_line(prog.lines)}", tail))
    elif not out and series:
        # A series' programs are kselftest_harness tests: an ok without one
        # case result tested nothing this harness can see.
        out.append(_case(target, name, Error, f"{name} reported ok but printed no test results", tail))
    elif not out:
        out.append(_case(target, name))
    return out


def parse_output(text: str, target: str, tree: Path, option_set: str = "", series: bool = False,
                 crashed: str = "") -> TestSuite:
    """One target's run_kselftest.sh output as a JUnit suite. ``series``: a
    series' own target, whose programs must report cases; ``option_set``
    ("CONFIG_X=y"): a skip is a failure; ``crashed``: how the kernel died
    or hung, if it did (output cut then is the kernel's failure). Never
    raises."""
    lines = text.splitlines()
    run = programs(lines)
    if not run.programs:
        return _suite(target, [_case(target, "(run)", Error, f"kselftest {target} ran no test program",
                                     "\n".join(lines[-LOG_LINES:]))])
    try:
        parser = load_parser(tree)
        cases = [c for prog in run.programs for c in _program_cases(parser, target, prog, option_set, series, crashed)]
    except Exception as exc:  # the tree's parser: missing, or not the API this reads
        why = str(exc) if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}"
        return _suite(target, [_case(target, "(parser)", Error, why)])
    if run.planned is not None and len(run.programs) < run.planned and all(p.ok is not None for p in run.programs):
        missing = run.planned - len(run.programs)
        cases.append(_case(target, "(run)", Failure if crashed else Error,
                           f"kselftest {target}: {missing} of its {run.planned} programs never started"
                           + (f": {crashed}" if crashed else " (the runner stopped)"), "\n".join(lines[-LOG_LINES:])))
    return _suite(target, cases)


def _kconfig_value(kconfig: Path | None, option: str) -> str:
    """``CONFIG_X=y`` (or =m) when the kernel's .config sets the option, else ""."""
    if not option or kconfig is None or not kconfig.is_file():
        return ""
    lines = kconfig.read_text(errors="replace").splitlines()
    return next((ln for ln in (f"{option}=y", f"{option}=m") if ln in lines), "")


def kernel_died(timed_out: bool, kernel_log: str | None) -> str:
    """How the guest's kernel stopped the kselftests, if it did: "" when
    nothing says so."""
    if timed_out:
        return "the guest hung and was killed by the watchdog"
    m = PANIC.search(kernel_log or "")
    return m.group(0) if m else ""


def parse(req: KselftestRequest, installed: Installed, reached: bool, crashed: str = "") -> list[TestSuite]:
    """The JUnit suites of every target asked for. ``reached``: the guest
    ran its command to the end, so every installed target's output must be
    there; ``crashed``: how the kernel died or hung, if it did."""
    series = {t.name: t for t in req.series_targets}
    suites = []
    for target in req.targets():
        own = series.get(target)
        if target in installed.problems:
            why = installed.problems[target]
            if own is not None and target in installed.absent:
                suites.append(_suite(target, [_case(target, "(target)", Error,
                                                    f"kselftest {target} of series {own.series} expected but "
                                                    f"absent: {why}")]))
            elif own is not None:
                suites.append(_suite(target, [_case(target, "(build)", Failure,
                                                    f"kselftest {target} of series {own.series} does not build",
                                                    why)]))
            else:
                suites.append(_suite(target, [_case(target, "(target)", Error, f"kselftest {target}: {why}")]))
            continue
        out = req.output(target)
        if not out.is_file():
            if reached:
                suites.append(_suite(target, [_case(target, "(run)", Error,
                                                    f"kselftest {target} left no output in the guest")]))
            continue
        option_set = _kconfig_value(req.kconfig, own.option) if own is not None else ""
        suites.append(parse_output(out.read_text(errors="replace"), target, req.tree, option_set,
                                   series=own is not None, crashed=crashed))
    return suites
