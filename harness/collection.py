"""Test collections beside the guest's pytest suite: the kernel's own tests.

A collection prepares on the host (the kselftests: built against the
kernel's build; KUnit: nothing, the kernel runs it at boot), may add a
command the guest runs after the suite, and turns what came back (the
kernel log, the files the command wrote) into JUnit suites, judged by the
same rules as everything else. The target runs the commands, the judge
(harness/target.py) asks each collection for its suites, the Reporter puts
them beside the guest's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from junitparser import TestSuite

from . import kselftest, kunit

if TYPE_CHECKING:
    from .target import Ran


class TestCollection(Protocol):
    name: str

    def command(self) -> str:
        """Shell run in the guest after the suite ("" for none)."""

    def suites(self, ran: Ran, reached: bool) -> list[TestSuite]:
        """The JUnit suites of what came back. ``reached``: the guest ran
        its command to the end, so whatever the collection expects must be
        there; otherwise what came back counts, nothing is missed."""


@dataclass
class KunitCollection:
    """KUnit tests built in and run at boot: their KTAP is in the kernel
    log, parsed with ``tree``'s kunit_parser; ``expected`` suites must be
    there."""
    tree: Path
    expected: tuple[str, ...] = ()
    name: str = "kunit"

    def command(self) -> str:
        return ""

    def suites(self, ran: Ran, reached: bool) -> list[TestSuite]:
        if ran.kernel_log is None:
            return []
        # A kernel that did not boot to the command may not have got as far
        # as its KUnit tests: what it printed counts, nothing is missed.
        return kunit.parse(ran.kernel_log, self.tree, self.expected if reached else ())


@dataclass
class KselftestCollection:
    """kselftest targets: installed on the host (``prepare``), each run in
    the guest with its run_kselftest.sh after the suite."""
    request: kselftest.KselftestRequest
    installed: kselftest.Installed = field(default_factory=kselftest.Installed)
    name: str = "kselftest"

    def prepare(self, log: Path) -> None:
        """Build and install every target (the kselftest stage)."""
        self.request.install.mkdir(parents=True, exist_ok=True)
        self.installed = kselftest.install(self.request, log)
        for target, why in self.installed.problems.items():
            print(f"kselftest: {target} not built: {why.splitlines()[0]}", flush=True)

    def command(self) -> str:
        return kselftest.guest_command(self.request, self.installed)

    def suites(self, ran: Ran, reached: bool) -> list[TestSuite]:
        # Their output must be there once the command returned a status; a
        # run cut earlier shows what it got to.
        return kselftest.parse(self.request, self.installed, reached=reached and ran.status is not None,
                               crashed=kselftest.kernel_died(ran.timed_out, ran.kernel_log))


def after_suite(suite_command: str, collections: tuple[TestCollection, ...]) -> str:
    """The suite's command followed by the collections' commands, keeping
    the suite's exit status as the command's."""
    extra = "; ".join(c for c in (col.command() for col in collections) if c)
    if not extra:
        return suite_command
    return f"{suite_command}; isolharness_status=$?; {extra}; exit $isolharness_status"
