"""The stages of a run, chained: prepare -> config -> build -> boot -> report.

Each stage is a function taking the previous stage's dataclass; ``check``
runs them all, records a StageResult for each (a stage not reached is
"skipped"), and always writes the report, whatever stopped the run.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NoReturn, TypeVar

from . import accel as accel_mod
from .apply import AppliedTree, apply_series
from .build import IMAGE, KernelBuild, build_kernel, finished
from .cache import build_path, cache_dir, check_free_space, no_space_hint, retire_old_layout
from .ccache import check_remote_setting, remote_setting
from .console import Splat, scan
from .errors import HarnessError, as_harness_error
from .guest import GUEST_JUNIT, GuestSuite, guest_env, in_project, prebuild_programs, pytest_command, warm_bytecode
from .guest_verdict import STAGE as GUEST_STAGE
from .guest_verdict import judge_guest
from .identity import KernelIdentity, console_banners, parse_banner
from .kconfig import KernelConfig, configure
from .outcome import ERROR, FAILED, MISSED, PASSED, SKIPPED, StageResult
from .profile import Profile
from .series import Series, resolve_series, series_set_key
from .results import rotate
from .source import DEFAULT_TARBALL, SourceRepo, check_ksrc, check_tarball, prepare_ksrc, prepare_tarball
from .report import report
from .summary import Summary
from .vm import COMMAND_LINE_SIZE, START_MARKER, VNG_NO_STATUS, VmResult, VmSpec, cut_command_line, run_vm

PROJECT = Path(__file__).resolve().parent.parent
CONSOLE_TAIL_LINES = 40

T = TypeVar("T")


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


@dataclass(frozen=True)
class BootOutcome:
    vm: VmResult
    splats: list[Splat]
    guest_junit: Path | None
    built: KernelIdentity = KernelIdentity()    # the kernel the image should carry
    built_banner: str = ""
    booted_banner: str = ""                     # first banner on the console, "" if none
    cmdline_cut: bool = False                   # the kernel command line filled COMMAND_LINE_SIZE

    @property
    def ran(self) -> KernelIdentity:
        """The identity of the kernel that ran: what the guest said of it, or
        what the console banner shows."""
        return self.vm.identity or parse_banner(self.booted_banner)

    def mismatch(self) -> str:
        """Why the booted kernel is not the one built, or ""."""
        if self.built_banner and self.booted_banner and self.booted_banner != self.built_banner:
            return (f"the guest booted another kernel than the one built: built '{self.built_banner}', "
                    f"booted '{self.booted_banner}'")
        ran = self.vm.identity
        if ran is not None and ran.build_id and self.built.build_id and ran.build_id != self.built.build_id:
            return (f"the guest runs another kernel than the one built: built build-id {self.built.build_id}, "
                    f"running build-id {ran.build_id} ({ran.describe()})")
        return ""

    def untrusted(self) -> str:
        """Why nothing this boot showed is a verdict on the kernel built, or ""."""
        cut = (f"the kernel command line filled COMMAND_LINE_SIZE ({COMMAND_LINE_SIZE}) and was cut: "
               f"nothing the guest did counts")
        return self.mismatch() or (cut if self.cmdline_cut else "")


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
    bdir = build_dir(prep, opts)
    if not (bdir / IMAGE).is_file():
        raise HarnessError(f"no kernel built in {bdir}", hint="run 'isolharness build' (or check) first")
    return finished(bdir, opts.results / "build.log", 0.0, 0)


def choose_accel(opts: RunOptions, cache: Path, image: Path) -> accel_mod.AccelChoice:
    def probe() -> str:
        print("boot: probing KVM with a short boot", flush=True)
        spec = VmSpec(image, Profile(name="probe", cpus=1, memory="512M", cmdline=""), "kvm", "true")
        res = run_vm(spec, opts.results / "kvm-probe-console.log", opts.results / "kvm-probe-output.log",
                     accel_mod.PROBE_DEADLINE, stage="kvm-probe", quiet=True, stall=accel_mod.PROBE_STALL)
        return accel_mod.probe_failure(res.reached_command, res.returncode, res.stalled, res.duration)

    return accel_mod.choose(opts.accel, cache, probe)


def stage_boot(prep: Prepared, kbuild: KernelBuild, opts: RunOptions, choice: accel_mod.AccelChoice,
               argv: list[str] | None = None) -> BootOutcome:
    results = opts.results.resolve()
    expect = tuple(dict.fromkeys([*prep.tree.series_names, *opts.expect]))
    suite = GuestSuite(PROJECT, results, kbuild.headers, prep.tree.series_names, expect, prep.tree.path,
                       opts.profile.isolated_cpus(), opts.profile.cpus, opts.test_timeout, opts.select,
                       kconfig=kbuild.build_dir / ".config")
    if argv is None:
        warm_bytecode(PROJECT)
        suite = prebuild_programs(suite)
        command = pytest_command(suite)
    else:
        command = in_project(Path.cwd(), argv, guest_env(suite))
    spec = VmSpec(kbuild.image, opts.profile, choice.accel, command, rwdirs=(results,), cwd=PROJECT)
    vm = run_vm(spec, results / "console.log", results / "guest-output.log", opts.timeout)
    text = vm.console.read_text(errors="replace")
    splats = scan(text)
    banners = console_banners(text)
    guest_xml = results / GUEST_JUNIT
    return BootOutcome(vm, splats, guest_xml if guest_xml.is_file() else None, kbuild.identity, kbuild.banner,
                       banners[0] if banners else "", cut_command_line(text))


def judge_boot(out: BootOutcome, timeout: float) -> StageResult:
    """Turn what the VM did into the boot stage's result."""
    vm = out.vm
    console = vm.console.read_text(errors="replace").splitlines()
    tail = "\n".join(console[-CONSOLE_TAIL_LINES:])
    booted = bool(out.booted_banner)
    res = StageResult("boot", PASSED, vm.duration, f"accelerator {vm.accel}")
    wrong = out.untrusted()
    if wrong:
        # Whatever happened is no verdict on the kernel built: a kernel
        # other than it ran, or init= was cut off its command line.
        res.status, res.message = MISSED, wrong
        res.detail = ("The console and the guest's results of this boot are not reported.\n" + tail)
    elif vm.timed_out:
        res.status, res.message = FAILED, f"guest hung: killed by the watchdog after {timeout:.0f}s"
        res.detail = tail
    elif not booted:
        res.status, res.message = MISSED, f"QEMU/virtme-ng did not start the kernel (vng exit {vm.returncode})"
        res.detail = tail
    elif not vm.reached_command:
        res.status, res.message = FAILED, "kernel did not reach the guest command"
        res.detail = tail
    elif vm.returncode == VNG_NO_STATUS and out.guest_junit is None:
        res.status, res.message = FAILED, "guest died before the tests finished (no exit status from the guest)"
        res.detail = tail
    return res


def judge_suite(out: BootOutcome, select: str | None) -> tuple[StageResult, bool]:
    """The guest stage of a run of the test suite (harness.guest_verdict)."""
    status = out.vm.returncode
    panicked = any(s.kind == "panic" for s in out.splats)
    return judge_guest(None if status == VNG_NO_STATUS else status, out.guest_junit, out.vm.output, select,
                       panicked=panicked)


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


def _fail_stage(name: str, stages: list[StageResult], start: float, exc: Exception) -> NoReturn:
    """Record the stage an exception stopped, and raise it as a HarnessError."""
    err = as_harness_error(exc)
    stages.append(StageResult(name, err.status, time.monotonic() - start, err.message, err.render()))
    if err is exc:
        raise err
    raise err from exc


def _timed(name: str, stages: list[StageResult], fn: Callable[[], T]) -> T:
    start = time.monotonic()
    try:
        value = fn()
    except Exception as exc:
        _fail_stage(name, stages, start, exc)
    except KeyboardInterrupt:
        stages.append(StageResult(name, MISSED, time.monotonic() - start, "interrupted (Ctrl-C or SIGTERM)"))
        raise
    stages.append(StageResult(name, PASSED, time.monotonic() - start))
    return value


ALL_STAGES = ("prepare", "config", "build", "boot")


@dataclass(frozen=True)
class RunResult:
    summary: Summary
    guest_status: int | None    # the guest command's exit status, if it returned one


def check(opts: RunOptions, argv: list[str] | None = None, boot_only: bool = False,
          after_config: Callable[[Prepared, KernelConfig], list[StageResult]] | None = None) -> RunResult:
    """The whole pipeline. Always writes junit.xml, summary.json and prints
    the summary; the caller exits with summary.exit_status.

    ``argv`` runs that command in the guest instead of the test suite;
    ``boot_only`` boots the kernel built last instead of configuring and
    building; ``after_config`` adds stages of its own between config and
    build (``isolharness series``: checkpatch and a build per patch)."""
    opts.results = opts.results.resolve()
    validate(opts)
    rotate(opts.results)
    stages: list[StageResult] = []
    props: dict[str, str] = {"profile": f"{opts.profile.name}: {opts.profile.cpus} vCPUs, "
                                        f"{opts.profile.memory}, {opts.profile.cmdline or '(no arguments)'}"}
    boot: BootOutcome | None = None
    report_cases = False
    interrupted = False
    hold = contextlib.ExitStack()
    try:
        # The tree's lock is held from apply to boot: see apply_series.
        prep = _timed("prepare", stages, lambda: stage_prepare(opts, hold))
        props.update(kernel_base=f"{prep.source.description} ({prep.source.base_commit[:12]})",
                     series=series_set_key(list(prep.series)), series_hash=prep.tree.series_hash[:16],
                     head_commit=prep.tree.head_commit)
        with hold:
            if boot_only:
                stages.append(StageResult("config", SKIPPED, 0.0, "boot only"))
                kbuild = _timed("build", stages, lambda: existing_build(prep, opts))
            else:
                kcfg = _timed("config", stages, lambda: stage_config(prep, opts))
                props["config_hash"] = kcfg.config_hash[:16]
                if after_config is not None:
                    stages.extend(after_config(prep, kcfg))
                kbuild = _timed("build", stages, lambda: stage_build(prep, kcfg, opts))
            props.update(kbuild.identity.properties("built"), **kbuild.properties())
            choice = accel_mod.AccelChoice("?", "")

            def do_boot() -> BootOutcome:
                nonlocal choice
                choice = choose_accel(opts, prep.cache, kbuild.image)
                return stage_boot(prep, kbuild, opts, choice, argv)

            start = time.monotonic()
            try:
                boot = do_boot()
            except Exception as exc:
                _fail_stage("boot", stages, start, exc)
            props["accelerator"] = f"{choice.accel} ({choice.reason})"
            props.update(boot.ran.properties("kernel"))
            booted = judge_boot(boot, opts.timeout)
            stages.append(booted)
            if argv is None and booted.status == PASSED:
                guest, report_cases = judge_suite(boot, opts.select)
                stages.append(guest)
    except Exception as exc:
        # Every failure still gets its report; one outside any stage (a bug
        # of ours between stages) is an error of the run.
        err = as_harness_error(exc)
        if not any(s.status in (ERROR, MISSED, FAILED) for s in stages):
            stages.append(StageResult("harness", ERROR, 0.0, err.message, err.render()))
        print(err.render(), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\nisolharness: interrupted; the cache stays usable, run again to resume", flush=True)
    finally:
        hold.close()
    # The console and the guest results of a kernel other than the one
    # built say nothing about it: left out, the boot stage says why. Guest
    # testcases count only when the guest stage found them trustworthy.
    trusted = boot if boot is not None and not boot.untrusted() else None
    summary = report(opts.results, stages, ALL_STAGES + ((GUEST_STAGE,) if argv is None else ()),
                     trusted.splats if trusted else [], trusted is not None, props,
                     trusted.guest_junit if trusted and report_cases else None)
    if interrupted:
        raise KeyboardInterrupt
    guest_status = trusted.vm.returncode if trusted and trusted.vm.reached_command else None
    return RunResult(summary, guest_status)
