"""The stages of a run, chained: prepare -> config -> build -> boot -> report.

Each stage is a function taking the previous stage's dataclass; ``check``
runs them all, records a StageResult for each (a stage not reached is
"skipped"), and always writes the report, whatever stopped the run.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import accel as accel_mod
from .apply import AppliedTree, apply_series
from .build import IMAGE, KernelBuild, build_kernel, built_commit, finished
from .cache import build_path, cache_dir, check_free_space, no_space_hint, retire_old_layout
from .ccache import check_remote_setting, remote_setting
from .errors import HarnessError
from .guest import GuestSuite
from .guest_verdict import STAGE as GUEST_STAGE
from .kconfig import KernelConfig, configure
from .outcome import SKIPPED, StageResult
from .profile import Profile
from .series import Series, resolve_series, series_set_key
from .results import rotate
from .source import DEFAULT_TARBALL, SourceRepo, check_ksrc, check_tarball, prepare_ksrc, prepare_tarball
from .report import report
from .summary import Summary
from .kunit import expected_suites
from . import kselftest
from .collection import KselftestCollection, KunitCollection, TestCollection
from .target import Judged, record_interrupt, record_run_error, run_on, timed
from .vm import VmSpec, run_vm
from .vm_target import VmTarget

PROJECT = Path(__file__).resolve().parent.parent

@dataclass
class RunOptions:
    cache: Path | None = None
    ksrc: Path | None = None
    rev: str = "HEAD"
    tarball: Path = DEFAULT_TARBALL
    series: list[str] | None = None          # None: patches/DEFAULT
    fragments: list[str] = field(default_factory=lambda: ["base", "isolation"])
    profile: Profile = field(default_factory=Profile)
    accel: str = "auto"
    timeout: float = 900.0                   # whole guest run
    test_timeout: int = 120                  # each guest test
    select: str | None = None                # pytest -k
    expect: list[str] = field(default_factory=list)  # series the guest tests must find, beyond those applied
    kselftest: list[str] = field(default_factory=list)  # upstream kselftest targets, beyond the series' own
    results: Path = Path("results/latest")
    jobs: int | None = None
    ccache_remote: str | None = None         # None: $ISOLHARNESS_CCACHE_REMOTE
    patches_dir: Path = PROJECT / "patches"
    kconfigs_dir: Path = PROJECT / "kconfigs"


@dataclass(frozen=True)
class Prepared:
    cache: Path
    source: SourceRepo
    series: tuple[Series, ...]
    tree: AppliedTree


# ---------------------------------------------------------------- stages

def stage_prepare(opts: RunOptions, hold: contextlib.ExitStack | None = None) -> Prepared:
    """Source and series; with ``hold``, the tree's lock is kept until that
    stack closes (apply_series)."""
    cache = cache_dir(opts.cache)
    check_free_space(cache)
    retire_old_layout(cache)
    series = resolve_series(opts.patches_dir, opts.series, cache)
    try:
        if opts.ksrc is not None:
            src = prepare_ksrc(cache, opts.ksrc, opts.rev)
        else:
            src = prepare_tarball(cache, opts.tarball)
        tree = apply_series(src, cache, series, hold)
    except OSError as exc:
        raise no_space_hint(exc, cache) from exc
    return Prepared(cache, src, tuple(series), tree)


def fragment_paths(opts: RunOptions, series: tuple[Series, ...] = ()) -> list[Path]:
    """kconfigs/series/<name>.config of each applied series that has one
    (the options only that series defines), then the fragments asked for,
    which come last so that they can turn a series' option off."""
    paths = []
    for s in series:
        own = opts.kconfigs_dir / "series" / f"{s.name}.config"
        if own.is_file():
            paths.append(own)
    for name in opts.fragments:
        p = Path(name)
        if not p.is_file():
            p = opts.kconfigs_dir / f"{name}.config"
        if not p.is_file():
            known = sorted(f.stem for f in opts.kconfigs_dir.glob("*.config"))
            raise HarnessError(f"config fragment '{name}' not found", hint=f"known fragments: {', '.join(known)}")
        paths.append(p)
    return paths


def build_dir(prep: Prepared, opts: RunOptions) -> Path:
    variant = "+".join(Path(f).stem for f in opts.fragments)
    return build_path(prep.cache, prep.tree.key, variant)


def stage_config(prep: Prepared, opts: RunOptions) -> KernelConfig:
    return configure(prep.tree.path, build_dir(prep, opts), fragment_paths(opts, prep.series), prep.tree.head_commit)


def stage_build(prep: Prepared, kcfg: KernelConfig, opts: RunOptions) -> KernelBuild:
    return build_kernel(prep.tree.path, kcfg.build_dir, prep.cache, opts.results / "build.log", opts.jobs,
                        stamp=f"{prep.tree.head_commit}:{kcfg.config_hash}",
                        trust_stamp=not prep.tree.changed and not kcfg.changed,
                        remote=remote_setting(opts.ccache_remote))


def existing_build(prep: Prepared, opts: RunOptions) -> KernelBuild:
    """The kernel built last in the run's build directory, which must be of
    the commit prepared: the worktree of one history serves every revision,
    and a kernel of another commit would be reported under this one's name."""
    bdir = build_dir(prep, opts)
    if not (bdir / IMAGE).is_file():
        raise HarnessError(f"no kernel built in {bdir}", hint="run 'isolharness build' (or check) first")
    commit = built_commit(bdir)
    if commit != prep.tree.head_commit:
        what = f"of commit {commit[:12]}" if commit else "of no complete build the harness recorded"
        raise HarnessError(f"the kernel in {bdir} is {what}, not of {prep.tree.head_commit[:12]}, the commit "
                           f"prepared: booting it would report it under the wrong name",
                           hint="build this revision first: 'isolharness build' with the same options")
    return finished(bdir, opts.results / "build.log", 0.0, 0)


def choose_accel(opts: RunOptions, cache: Path, image: Path) -> accel_mod.AccelChoice:
    def probe() -> str:
        print("boot: probing KVM with a short boot", flush=True)
        spec = VmSpec(image, Profile(name="probe", cpus=1, memory="512M", cmdline=""), "kvm", "true")
        res = run_vm(spec, opts.results / "kvm-probe-console.log", opts.results / "kvm-probe-output.log",
                     accel_mod.PROBE_DEADLINE, stage="kvm-probe", quiet=True, stall=accel_mod.PROBE_STALL)
        return accel_mod.probe_failure(res.reached_command, res.returncode, res.stalled, res.duration)

    return accel_mod.choose(opts.accel, cache, probe)


def kselftest_request(prep: Prepared, kbuild: KernelBuild, opts: RunOptions) -> kselftest.KselftestRequest:
    """The kselftest targets of the series applied or expected, and those
    asked for with --kselftest."""
    applied = [(s.name, s.directory) for s in prep.series]
    expected = [(name, opts.patches_dir / name) for name in opts.expect if name not in prep.tree.series_names]
    return kselftest.KselftestRequest(prep.tree.path, kbuild.build_dir, opts.results / "kselftest",
                                      kselftest.series_targets(applied + expected), tuple(opts.kselftest),
                                      kbuild.build_dir / ".config")


def boot_target(prep: Prepared, kbuild: KernelBuild, opts: RunOptions, argv: list[str] | None,
                collections: tuple[TestCollection, ...] = ()) -> VmTarget:
    """The VM that boots the kernel built, with the suite (and the
    collections' commands after it) or ``argv``."""
    expect = tuple(dict.fromkeys([*prep.tree.series_names, *opts.expect]))
    suite = GuestSuite(PROJECT, opts.results.resolve(), kbuild.headers, prep.tree.series_names, expect,
                       prep.tree.path, opts.profile.isolated_cpus(), opts.profile.cpus, opts.test_timeout,
                       opts.select, kconfig=kbuild.build_dir / ".config")
    return VmTarget(kbuild.image, opts.profile, suite, PROJECT, argv,
                    lambda: choose_accel(opts, prep.cache, kbuild.image), kbuild.identity, kbuild.banner,
                    collections)


def kunit_expected(prep: Prepared, kbuild: KernelBuild, opts: RunOptions) -> tuple[str, ...]:
    """The KUnit suites the kernel must run at boot: those of the series
    applied (their fragment turns KUnit on), and those of a series only
    expected (--expect, a --ksrc tree that carries it) when the kernel was
    built with KUnit: the harness cannot turn on an option of a series it
    did not apply."""
    applied = tuple(prep.tree.series_names)
    others = tuple(s for s in opts.expect if s not in applied)
    config = kbuild.build_dir / ".config"
    with_kunit = config.is_file() and "CONFIG_KUNIT=y" in config.read_text().splitlines()
    return expected_suites(opts.patches_dir, applied + (others if with_kunit else ()))


# ---------------------------------------------------------------- check

def validate(opts: RunOptions) -> None:
    """The arguments, checked before anything is written or rotated."""
    if opts.ksrc is not None:
        check_ksrc(opts.ksrc, opts.rev)
    else:
        check_tarball(opts.tarball)
    # Names and directories are resolved here; an mbox file is split later.
    names = None if opts.series is None else [s for s in opts.series if not Path(s).is_file()]
    resolve_series(opts.patches_dir, names)
    fragment_paths(opts)
    check_remote_setting(remote_setting(opts.ccache_remote))
    for target in opts.kselftest:
        try:
            kselftest.check_target_name(target)
        except ValueError as exc:
            raise HarnessError(str(exc)) from None


def inject_harness_bug() -> None:
    """The e2e fault matrix's bug of the harness (ISOLHARNESS_FAULT=harness-bug,
    tests/e2e/test_honest_verdicts.py): an exception no stage expects, between
    stages, which must still end in a report and exit 2."""
    if os.environ.get("ISOLHARNESS_FAULT") == "harness-bug":
        raise RuntimeError("injected (ISOLHARNESS_FAULT=harness-bug)")


ALL_STAGES = ("prepare", "config", "build", "boot")
KSELFTEST_STAGE = "kselftest"


@dataclass(frozen=True)
class RunResult:
    summary: Summary
    guest_status: int | None    # the guest command's exit status, if it returned one


def check(opts: RunOptions, argv: list[str] | None = None, boot_only: bool = False,
          after_config: Callable[[Prepared, KernelConfig, list[StageResult]], None] | None = None) -> RunResult:
    """The whole pipeline. Always writes junit.xml, summary.json and prints
    the summary; the caller exits with summary.exit_status.

    ``argv`` runs that command in the guest instead of the test suite;
    ``boot_only`` boots the kernel built last instead of configuring and
    building; ``after_config`` adds stages of its own between config and
    build (``isolharness series``: checkpatch and a build per patch), to
    the run's list as each ends, so that one the environment stopped
    keeps those before it."""
    opts.results = opts.results.resolve()
    validate(opts)
    rotate(opts.results)
    stages: list[StageResult] = []
    props: dict[str, str] = {"profile": f"{opts.profile.name}: {opts.profile.cpus} vCPUs, "
                                        f"{opts.profile.memory}, {opts.profile.cmdline or '(no arguments)'}"}
    judged: Judged | None = None
    interrupted = False
    expected_stages = ALL_STAGES
    hold = contextlib.ExitStack()
    try:
        # The tree's lock is held from apply to boot: see apply_series.
        prep = timed("prepare", stages, lambda: stage_prepare(opts, hold))
        props.update(kernel_base=f"{prep.source.description} ({prep.source.base_commit[:12]})",
                     series=series_set_key(list(prep.series)), series_hash=prep.tree.series_hash[:16],
                     head_commit=prep.tree.head_commit)
        inject_harness_bug()
        with hold:
            if boot_only:
                stages.append(StageResult("config", SKIPPED, 0.0, "boot only"))
                kbuild = timed("build", stages, lambda: existing_build(prep, opts))
            else:
                kcfg = timed("config", stages, lambda: stage_config(prep, opts))
                props["config_hash"] = kcfg.config_hash[:16]
                if after_config is not None:
                    after_config(prep, kcfg, stages)
                kbuild = timed("build", stages, lambda: stage_build(prep, kcfg, opts))
            props.update(kbuild.identity.properties("built"), **kbuild.properties())
            collections: list[TestCollection] = [KunitCollection(prep.tree.path, kunit_expected(prep, kbuild, opts))]
            request = kselftest_request(prep, kbuild, opts)
            if argv is None and request.targets():
                expected_stages = ("prepare", "config", "build", KSELFTEST_STAGE, "boot")
                selftests = KselftestCollection(request)
                timed(KSELFTEST_STAGE, stages,
                                lambda: selftests.prepare(opts.results / "kselftest-build.log"),
                                f"targets {', '.join(request.targets())}")
                collections.append(selftests)
            target = boot_target(prep, kbuild, opts, argv, tuple(collections))
            try:
                judged = run_on(target, stages, argv is None, opts.select, opts.timeout)
            finally:
                if target.choice is not None:
                    props["accelerator"] = f"{target.choice.accel} ({target.choice.reason})"
            if judged.ran is not None and judged.ran.identity is not None:
                props.update(judged.ran.identity.properties("kernel"))
    except Exception as exc:
        # Every failure still gets its report.
        print(record_run_error(stages, exc).render(), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        record_interrupt(stages)
        print("\nisolharness: interrupted; the cache stays usable, run again to resume", flush=True)
    finally:
        hold.close()
    # The console and the guest results of a kernel other than the one
    # built say nothing about it: left out, the boot stage says why. Guest
    # testcases count only when the guest stage found them trustworthy.
    summary = report(opts.results, stages, expected_stages + ((GUEST_STAGE,) if argv is None else ()), judged, props)
    if interrupted:
        raise KeyboardInterrupt
    ran = judged.ran if judged is not None and not judged.ran.untrusted else None
    return RunResult(summary, ran.status if ran is not None and ran.reached_command else None)
