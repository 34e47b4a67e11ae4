"""The command the guest runs: pytest on tests/guest/ from the harness's own
virtual environment, over the host root that virtme-ng shares read-only."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import children

GUEST_JUNIT = "guest-junit.xml"
# Host variables the guest tests read as they are (tests/guest/test_fuzz.py;
# tests/guest/conftest.py: the noisy negative control, and the account
# turned off, which only bench/interference.py does)
PASSED_THROUGH = ("ISOLHARNESS_FUZZ_CALLS", "ISOLHARNESS_FUZZ_SEED", "ISOLHARNESS_NOISY", "ISOLHARNESS_INTERFERENCE",
                  "ISOLHARNESS_FAULT")


@dataclass(frozen=True)
class GuestSuite:
    project: Path               # repository root (tests/guest lives there)
    results: Path               # shared read-write with the host
    headers: Path               # installed uapi headers of the built kernel
    series: tuple[str, ...]     # series applied to the kernel under test
    expect: tuple[str, ...]     # series whose features the tests must find
    ksrc: Path                  # the source tree the kernel was built from
    isolated: str               # cpulist the profile isolates
    cpus: int                   # vCPUs of the profile
    test_timeout: int           # seconds per guest test
    select: str | None = None   # pytest -k expression
    prebuilt: Path | None = None  # the suite's C programs, built on the host (tests/guest/programs.py)
    kconfig: Path | None = None   # the kernel's .config (else the guest reads /proc/config.gz)


def guest_env(suite: GuestSuite) -> dict[str, str]:
    return {
        "ISOLHARNESS_HEADERS": str(suite.headers),
        "ISOLHARNESS_SERIES": ",".join(suite.series),
        "ISOLHARNESS_EXPECT": ",".join(suite.expect),
        "ISOLHARNESS_KSRC": str(suite.ksrc),
        "ISOLHARNESS_ISOLATED": suite.isolated,
        "ISOLHARNESS_CPUS": str(suite.cpus),
        "ISOLHARNESS_RESULTS": str(suite.results),
        "PYTHONDONTWRITEBYTECODE": "1",
        **({"ISOLHARNESS_PREBUILT": str(suite.prebuilt)} if suite.prebuilt else {}),
        **({"ISOLHARNESS_KCONFIG": str(suite.kconfig)} if suite.kconfig else {}),
        **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
    }


def pytest_command(suite: GuestSuite, python: str | None = None, wrapper: tuple[str, ...] = (),
                   extra_env: dict[str, str] | None = None, plugins: tuple[str, ...] = ()) -> str:
    """The guest suite's shell command; ``wrapper`` goes before the
    interpreter (e.g. coreutils timeout), ``extra_env`` after the suite's,
    ``plugins`` are loaded with -p (when not installed as distributions)."""
    python = python or sys.executable
    argv = [
        *wrapper, python, "-m", "pytest", "tests/guest",
        *[arg for plugin in plugins for arg in ("-p", plugin)],
        "-p", "no:cacheprovider",
        "-o", "junit_suite_name=guest",
        "-o", "junit_family=xunit2",
        f"--junitxml={suite.results / GUEST_JUNIT}",
        f"--timeout={suite.test_timeout}",
        "-rfE", "-v",
    ]
    if suite.select:
        argv += ["-k", suite.select]
    return in_project(suite.project, argv, {**guest_env(suite), **(extra_env or {})})


def in_project(project: Path, argv: list[str], env: dict[str, str]) -> str:
    """Shell command running argv in ``project`` with ``env`` added: the test
    suite, or the user's command for `isolharness exec -- CMD...`."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"cd {shlex.quote(str(project))} && env {assigns} {shlex.join(argv)}"


PROGRAMS = "programs"


def prebuild_programs(suite: GuestSuite) -> GuestSuite:
    """Build the suite's C programs on the host, where gcc is the guest's own
    (same root file system) but runs at native speed, into the results
    directory the guest shares. A program that does not compile is recorded
    as such for its test to report. Should the step itself fail, the suite
    is returned unchanged and the guest builds what it needs."""
    out = suite.results / PROGRAMS
    script = suite.project / "tests" / "guest" / "programs.py"
    env = {**os.environ, **guest_env(suite)}
    try:
        res = children.run([sys.executable, str(script), str(out)], capture_output=True, text=True,
                             timeout=300, env=env)
    except subprocess.TimeoutExpired:
        print("boot: building the guest programs on the host timed out; the guest will build them", flush=True)
        return suite
    if res.returncode != 0:
        print(f"boot: building the guest programs on the host failed; the guest will build them:\n"
              f"{res.stderr.strip()[-800:]}", flush=True)
        return suite
    for line in res.stdout.splitlines():
        print(f"boot: guest program {line}", flush=True)
    return dataclasses.replace(suite, prebuilt=out)


def warm_bytecode(project: Path) -> None:
    """Compile tests/guest on the host, where it takes a second, so that the
    guest (read-only root, bytecode writing off, TCG speed) loads it instead
    of compiling it: plain bytecode for the helper modules, and pytest's own
    cache of the assertion-rewritten test modules, which pytest reads even
    where it cannot write. Best effort: the guest compiles what is missing."""
    guest = project / "tests" / "guest"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    children.run([sys.executable, "-m", "compileall", "-q", str(guest)], capture_output=True, env=env)
    children.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                    str(guest)], cwd=project, capture_output=True, timeout=120, env=env)

