"""Command line: ``isolharness {check,series,bisect,test,prepare,config,build,boot,exec,parse,report,doctor}``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import __version__, bisect, doctor, git, pipeline, remote, revision, summary
from .children import interrupt_on_signals
from .errors import HarnessError, as_harness_error
from .identity import IDENTITY_MARKER
from .vm import START_MARKER
from .parse import parse_logs
from .results import rotate
from .collection import KselftestCollection, KunitCollection
from .kselftest import KselftestRequest, Installed, series_targets
from .outcome import EXIT_ERROR, EXIT_FAILED, EXIT_OK, exit_status
from .profile import PROFILES, make_profile

EPILOG = """exit status: 0 all passed; 1 the code under test failed (patch does not
apply, kernel does not build, guest panicked, hung or splatted, a guest test
failed); 2 the harness or its environment failed (bad argument, missing tool,
bad config fragment, no disk space, QEMU would not start). `exec` returns the
guest command's own status instead of 0/1."""


def _common(p: argparse.ArgumentParser, boot: bool = True) -> None:
    g = p.add_argument_group("source and series")
    g.add_argument("--cache", help="cache directory (default $ISOLHARNESS_CACHE or ~/.cache/isolharness)")
    g.add_argument("--ksrc", type=Path, help="your kernel git tree (never modified; cloned into the cache)")
    g.add_argument("--rev", default="HEAD", help="revision of --ksrc to use as the base (default HEAD)")
    g.add_argument("--tarball", type=Path, default=pipeline.DEFAULT_TARBALL,
                   help=f"source tarball when no --ksrc (default {pipeline.DEFAULT_TARBALL})")
    g.add_argument("--series", action="append", metavar="NAME|DIR|MBOX",
                   help="series to apply, in order: a name under patches/, a directory with a series file, or an "
                        "mbox (git format-patch --stdout, b4 am; cover letter skipped); repeatable; "
                        "'none' for the bare base (default: patches/DEFAULT)")
    g.add_argument("--kconfig", action="append", metavar="FRAGMENT",
                   help="config fragments (names in kconfigs/ or paths), repeatable (default: base isolation)")
    g.add_argument("-j", "--jobs", type=int, help="make -j (default: number of CPUs)")
    g.add_argument("--ccache-remote", metavar="URL",
                   help="ccache remote storage shared with other machines (ccache's remote_storage syntax: "
                        "redis://HOST[:PORT], http://HOST/PATH, ...; default $ISOLHARNESS_CCACHE_REMOTE; "
                        "'' for none)")
    g.add_argument("--results", type=Path, default=Path("results/latest"),
                   help="results directory (default results/latest; the previous run moves to results/previous)")
    if boot:
        b = p.add_argument_group("guest")
        b.add_argument("--profile", default="default", choices=sorted(PROFILES), help="guest profile")
        b.add_argument("--cpus", type=int, help="override the profile's vCPU count")
        b.add_argument("--memory", help="override the profile's memory, e.g. 2G")
        b.add_argument("--cmdline", help="replace the profile's kernel arguments")
        b.add_argument("--append", action="append", metavar="ARG", help="add kernel arguments, repeatable")
        b.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"],
                       help="accelerator (auto: KVM only if a probe boot works)")
        b.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole guest run (default 900)")
        b.add_argument("--test-timeout", type=int, default=120, help="seconds per guest test (default 120)")
        b.add_argument("-k", dest="select", metavar="EXPR", help="pytest -k expression for the guest tests")
        b.add_argument("--expect", action="append", default=[], metavar="SERIES",
                       help="guest tests of SERIES must find its feature even though the harness did not apply it "
                            "(a --ksrc tree that already carries it; negative controls)")
        b.add_argument("--kselftest", action="append", default=[], metavar="TARGET",
                       help="also build and run this kselftest target of the tree "
                            "(tools/testing/selftests/TARGET), repeatable; the series' own targets always run")


def parse_collections(args: argparse.Namespace) -> tuple:
    """The test collections `isolharness parse` reads again."""
    if (args.kunit_suite or args.kselftest_dir) and not args.kunit_tree:
        raise HarnessError("--kunit-suite and --kselftest-dir need --kunit-tree: the tree whose KTAP parser reads them")
    if args.expect and not args.kselftest_dir:
        raise HarnessError("parse: --expect names the series whose kselftests --kselftest-dir must hold")
    if not args.kunit_tree:
        return ()
    out: list = [KunitCollection(args.kunit_tree, tuple(args.kunit_suite))]
    if args.kselftest_dir:
        if not args.kselftest_dir.is_dir():
            raise HarnessError(f"{args.kselftest_dir} is not a directory", hint="pass a run's kselftest directory")
        own = series_targets([(n, pipeline.PROJECT / "patches" / n) for n in args.expect])
        saved = tuple(sorted(p.stem for p in args.kselftest_dir.glob("*.tap")))
        upstream = tuple(t for t in saved if t not in {s.name for s in own})
        request = KselftestRequest(args.kunit_tree, args.kselftest_dir, args.kselftest_dir, own, upstream)
        # Every target was built; one whose output is not there left none.
        out.append(KselftestCollection(request, Installed(tuple(t.name for t in own) + upstream)))
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isolharness", description="Build, boot and test CPU-isolation kernel series.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"isolharness {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _common(sub.add_parser("check", help="prepare, config, build, boot and report (the main job)"))
    _common(sub.add_parser("prepare", help="unpack/clone the source and apply the series"), boot=False)
    _common(sub.add_parser("config", help="prepare, then merge the config fragments"), boot=False)
    _common(sub.add_parser("build", help="prepare, config, then build the kernel"), boot=False)
    _common(sub.add_parser("boot", help="boot the last built kernel and run the guest tests"))
    s = sub.add_parser("series", help="test one revision of a series: checkpatch, a build after every patch, "
                                      "the guest suite on the top, optionally against a baseline")
    _common(s)
    s.add_argument("input", metavar="MBOX|DIR|BASE..TOP",
                   help="an mbox (git format-patch --stdout, b4 am), a series directory, or a range of --ksrc")
    s.add_argument("--baseline", type=Path, metavar="SUMMARY_JSON",
                   help="the previous revision's summary.json: report new failures, fixes, tests added or "
                        "removed and stage times; exit 1 on a regression")
    e = sub.add_parser("exec", help="build if needed, boot, and run CMD in the guest instead of the tests")
    _common(e)
    e.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD...")
    b = sub.add_parser("bisect", help="find the --ksrc commit that broke what the guest tests check "
                                      "(git bisect run in a clone in the cache)")
    _common(b)
    b.add_argument("--good", required=True, metavar="REV", help="a commit where the tests pass")
    b.add_argument("--bad", required=True, metavar="REV", help="a later commit where they fail")
    b.add_argument("--tries", type=int, default=1, metavar="N",
                   help="run a failing step up to N times; one pass counts as good (flaky failure)")
    t = sub.add_parser("test", help="run the guest suite on a machine that already runs the kernel under test, "
                                    "over SSH")
    t.add_argument("--target", required=True, metavar="ssh://USER@HOST[:PORT]")
    t.add_argument("--identity", type=Path, metavar="KEY", help="private key (default: ~/.ssh keys and the agent)")
    t.add_argument("--known-hosts", type=Path, default=Path.home() / ".ssh" / "known_hosts",
                   help="host keys to check the target against (default ~/.ssh/known_hosts)")
    t.add_argument("--accept-new-host-key", action="store_true",
                   help="record the key of a host the known_hosts file does not list (a changed key is "
                        "always refused)")
    t.add_argument("--remote-python", default="python3", metavar="PYTHON", help="interpreter on the target")
    t.add_argument("--headers", type=Path, metavar="DIR",
                   help="installed uapi headers of the target's kernel (make headers_install), for the "
                        "tests that compile against them")
    t.add_argument("--results", type=Path, default=Path("results/latest"))
    t.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole suite (default 900)")
    t.add_argument("--test-timeout", type=int, default=120, help="seconds per test (default 120)")
    t.add_argument("-k", dest="select", metavar="EXPR", help="pytest -k expression")
    t.add_argument("--expect", action="append", default=[], metavar="SERIES",
                   help="series the target's kernel carries: their tests fail when the feature is absent")
    pa = sub.add_parser("parse", help="judge saved logs again: splat scan of a console log, guest verdict of a "
                                      "guest JUnit file")
    pa.add_argument("console", type=Path, metavar="CONSOLE")
    pa.add_argument("guest_junit", type=Path, nargs="?", metavar="GUEST_JUNIT")
    pa.add_argument("--status", type=int, metavar="N", help="the guest pytest's exit status, when known")
    pa.add_argument("--output", type=Path, metavar="LOG", help="the guest's output, for the tail an error shows")
    pa.add_argument("--kunit-tree", type=Path, metavar="TREE",
                    help="a kernel tree whose tools/testing/kunit parses KTAP: the console's KUnit results, "
                         "and --kselftest-dir's output")
    pa.add_argument("--kunit-suite", action="append", default=[], metavar="NAME",
                    help="a KUnit suite that must be in the console (repeatable)")
    pa.add_argument("--kselftest-dir", type=Path, metavar="DIR",
                    help="a run's kselftest directory: each TARGET.tap in it is read again (needs --kunit-tree)")
    pa.add_argument("--expect", action="append", default=[], metavar="SERIES",
                    help="with --kselftest-dir: SERIES's own targets (patches/SERIES/kselftest) must be there "
                         "and report results")
    pa.add_argument("--results", type=Path, default=Path("results/parsed"),
                    help="where the new report goes (default results/parsed)")
    r = sub.add_parser("report", help="re-render a saved run's summary, with the interference table")
    r.add_argument("dir", type=Path, nargs="?", default=Path("results/latest"))
    d = sub.add_parser("doctor", help="list what is missing or broken, with the fix")
    d.add_argument("--cache")
    d.add_argument("--ccache-remote", metavar="URL", help="remote ccache storage to check "
                                                          "(default $ISOLHARNESS_CCACHE_REMOTE)")
    return parser


def options(args: argparse.Namespace) -> pipeline.RunOptions:
    opts = pipeline.RunOptions(cache=args.cache, ksrc=args.ksrc, rev=args.rev, tarball=args.tarball,
                               series=args.series, results=args.results, jobs=args.jobs,
                               ccache_remote=args.ccache_remote)
    if args.kconfig:
        opts.fragments = args.kconfig
    if hasattr(args, "profile"):
        opts.profile = make_profile(args.profile, args.cpus, args.memory, args.cmdline, args.append)
        opts.accel, opts.timeout, opts.test_timeout, opts.select = args.accel, args.timeout, args.test_timeout, args.select
        opts.expect = args.expect
        opts.kselftest = args.kselftest
        if opts.timeout <= 0 or opts.test_timeout <= 0:
            raise HarnessError("--timeout and --test-timeout must be positive")
    return opts


def _stage_cmd(args: argparse.Namespace, opts: pipeline.RunOptions) -> int:
    with contextlib.ExitStack() as hold:
        prep = pipeline.stage_prepare(opts, hold)
        print(f"prepare: {prep.source.description}, series {pipeline.series_set_key(list(prep.series))}, "
              f"tree {prep.tree.path} at {prep.tree.head_commit[:12]}")
        if args.cmd == "prepare":
            return EXIT_OK
        kcfg = pipeline.stage_config(prep, opts)
        print(f"config: {kcfg.config_path} ({'changed' if kcfg.changed else 'unchanged'}, sha256 {kcfg.config_hash[:16]})")
        if args.cmd == "config":
            return EXIT_OK
        # A results directory of the harness's, like check's.
        opts.results = rotate(opts.results.resolve())
        kb = pipeline.stage_build(prep, kcfg, opts)
        print(f"build: {kb.image}\nheaders: {kb.headers}")
    return EXIT_OK


def _exec_cmd(opts: pipeline.RunOptions, argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise HarnessError("exec needs a command", hint="isolharness exec -- uname -a")
    run = pipeline.check(opts, argv=argv)
    result = run.summary
    out = opts.results / "guest-output.log"
    if out.is_file():
        # The command's own output, without the two lines the harness's
        # prologue printed (the start marker, the kernel's identity).
        lines = out.read_text(errors="replace").splitlines(keepends=True)
        sys.stdout.write("".join(ln for ln in lines
                                 if ln.rstrip("\n") != START_MARKER
                                 and not ln.startswith(IDENTITY_MARKER + " ")))
    if result.exit_status == EXIT_ERROR:
        return EXIT_ERROR
    boot = next((s for s in result.stages if s.name == "boot"), None)
    if boot is None or boot.status != "passed":
        return EXIT_FAILED
    if any(c.status == "failed" for c in result.console):
        return EXIT_FAILED
    if run.guest_status is None:
        return EXIT_FAILED
    print(f"isolharness: the guest command exited with status {run.guest_status}")
    return run.guest_status


def bisect_cmd(opts: pipeline.RunOptions, good: str, bad: str, tries: int) -> int:
    bisect.validate_bisect(opts, good, bad, tries)
    opts.results = rotate(opts.results.resolve())      # arguments first, then the rotation
    result = bisect.bisect(opts, good, bad, tries)
    (opts.results / "bisect.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(bisect.render(result))
    return EXIT_OK if result.first_bad else EXIT_FAILED


def remote_cmd(args: argparse.Namespace) -> int:
    ropts = remote.RemoteOptions(remote.parse_target(args.target), identity=args.identity,
                                 known_hosts=args.known_hosts, accept_new_host_key=args.accept_new_host_key,
                                 python=args.remote_python, headers=args.headers, select=args.select,
                                 expect=args.expect, timeout=args.timeout, test_timeout=args.test_timeout,
                                 results=args.results)
    if args.headers is not None and not (args.headers / "linux").is_dir():
        raise HarnessError(f"--headers {args.headers} has no linux/ directory (pass make headers_install's output)")
    return remote.run_remote(ropts).exit_status


def main(argv: list[str] | None = None) -> int:
    interrupt_on_signals()
    git.scrub_repo_env()  # started from a git hook or git bisect run
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "doctor":
            checks = doctor.run_checks(args.cache, args.ccache_remote)
            print(doctor.render(checks))
            return EXIT_ERROR if any(not c.ok and c.fatal for c in checks) else EXIT_OK
        if args.cmd == "report":
            s = summary.load(args.dir)
            print(summary.render(s, args.dir))
            print(summary.render_interference(s))
            return s.exit_status
        if args.cmd == "test":
            return remote_cmd(args)
        if args.cmd == "parse":
            return parse_logs(args.console, args.guest_junit, args.status, args.results, args.output,
                              parse_collections(args)).exit_status
        opts = options(args)
        if args.cmd in ("prepare", "config", "build"):
            return _stage_cmd(args, opts)
        if args.cmd == "exec":
            return _exec_cmd(opts, args.argv)
        if args.cmd == "bisect":
            return bisect_cmd(opts, args.good, args.bad, args.tries)
        if args.cmd == "series":
            return revision.run_series(opts, args.input, args.baseline)
        if args.cmd == "boot":
            return pipeline.check(opts, boot_only=True).summary.exit_status
        return pipeline.check(opts).summary.exit_status
    except Exception as exc:
        # The one top-level handler: nothing leaves as a bare traceback with
        # exit 1, which would blame the code under test.
        err = as_harness_error(exc)
        print(err.render(), file=sys.stderr)
        return exit_status([err.status])
    except KeyboardInterrupt:
        print("isolharness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
