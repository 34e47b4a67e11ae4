"""``isolharness bisect``: find the commit of a --ksrc tree that broke what
the guest suite checks, with ``git bisect run``.

The bisection runs in a bare ``git clone --shared`` of the user's tree in
the cache, started with ``--no-checkout`` (the commit under test is
BISECT_HEAD): the user's tree, its working copy, branches and bisect state
are never touched. Each step is ``python -m harness.bisect step WORKDIR``,
which runs the ``check`` pipeline on that commit (``--ksrc`` the user's
tree, ``--rev`` the commit, no series applied) and exits as git bisect run
expects: 0 good, 1 bad, 125 skip (the kernel does not build, or the
environment rather than the kernel failed), 128 and above abort. A failing
step is retried up to --tries times: one pass makes the commit good (the
failure was flaky) and is logged as such. Every step is appended to
WORKDIR/steps.jsonl. Running the same bisect again resumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import git as g
from .children import Group, interrupt_on_signals
from .cache import cache_dir, locked
from .errors import HarnessError, as_harness_error
from .outcome import ERROR, EXIT_ERROR, EXIT_OK, FAILED, MISSED
from .pipeline import RunOptions, check
from .profile import Profile
from .source import looks_like_kernel

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 128


@dataclass
class Step:
    commit: str
    subject: str
    attempt: int
    verdict: str            # good, bad, skip, abort
    reason: str
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    results: str = ""


@dataclass
class BisectResult:
    first_bad: str | None
    subject: str
    candidates: list[str]   # when skipped commits hide the answer
    steps: list[Step]


def _options_to_json(opts: RunOptions) -> dict:
    data = {f.name: getattr(opts, f.name) for f in fields(opts)}
    data["profile"] = asdict(opts.profile)
    return json.loads(json.dumps(data, default=str))


def _options_from_json(data: dict) -> RunOptions:
    opts = RunOptions()
    for f in fields(RunOptions):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "profile":
            value = Profile(**value)
        elif f.name in ("cache", "ksrc", "tarball", "results", "patches_dir", "kconfigs_dir") and value is not None:
            value = Path(value)
        setattr(opts, f.name, value)
    return opts


def workdir(cache: Path, ksrc: Path, good: str, bad: str) -> Path:
    key = hashlib.sha256(f"{ksrc}\0{good}\0{bad}".encode()).hexdigest()[:16]
    return cache / "bisect" / key


def _subject(repo: Path, commit: str) -> str:
    return g.git(repo, "log", "-1", "--format=%s", commit).strip()


def classify(exit_status: int, failed_stages: list[str], why: str = "") -> tuple[int, str]:
    """A check's outcome as a git bisect run verdict; ``why``: what the
    check's first error says, for an abort."""
    if exit_status == EXIT_OK:
        return GOOD, "passed"
    if exit_status == EXIT_ERROR:
        # Not a verdict on the commit: skipping would let a broken
        # environment skip every commit left. The bisect stops.
        return ABORT, ("the harness or its environment failed, not the kernel: bisect stopped"
                       + (f" ({why})" if why else ""))
    if any(s in ("prepare", "config", "build") for s in failed_stages):
        return SKIP, "the kernel does not build at this commit"
    return BAD, "failed: " + ", ".join(failed_stages) if failed_stages else "failed"


def first_error(summary) -> str:
    """The first stage or testcase that is an ERROR or a MISS, with its
    message: what stopped the step."""
    rows = [*summary.stages, *summary.console, *summary.guest]
    row = next((r for r in rows if r.status in (ERROR, MISSED)), None)
    if row is None:
        return ""
    message = row.message.splitlines()[0][:200] if row.message else ""
    return f"{row.name}: {message}" if message else row.name


def run_step(work: Path, commit: str | None = None) -> tuple[int, list[Step]]:
    """Test one commit (default BISECT_HEAD) with retries; log every try."""
    state = json.loads((work / "bisect.json").read_text())
    repo = work / "repo.git"
    commit = commit or g.rev_parse(repo, "BISECT_HEAD")
    subject = _subject(repo, commit)
    tries = int(state["tries"])
    steps: list[Step] = []
    verdict = BAD
    for attempt in range(1, tries + 1):
        opts = _options_from_json(state["options"])
        opts.rev = commit
        opts.series = ["none"]
        opts.results = work / "steps" / f"{commit[:12]}-{attempt}"
        print(f"bisect: testing {commit[:12]} {subject} (try {attempt}/{tries})", flush=True)
        start = time.monotonic()
        try:
            summary = check(opts).summary
        except KeyboardInterrupt:
            steps.append(Step(commit, subject, attempt, "abort", "interrupted", time.monotonic() - start))
            _log(work, steps[-1])
            return ABORT, steps
        failed = [s.name for s in summary.stages if s.status in (FAILED, ERROR, MISSED)]
        failed += [f"{c.name}" for c in summary.guest if c.status == FAILED][:5]
        if any(c.status == FAILED for c in summary.console):
            failed.append("kernel splat")
        verdict, reason = classify(summary.exit_status, failed, first_error(summary))
        if verdict == GOOD and attempt > 1:
            reason = f"passed on try {attempt} after {attempt - 1} failure(s): flaky, counted good"
        steps.append(Step(commit, subject, attempt, _NAMES[verdict], reason,
                          round(time.monotonic() - start, 1), {s.name: round(s.time, 1) for s in summary.stages},
                          str(opts.results)))
        _log(work, steps[-1])
        if verdict != BAD:
            break
    return verdict, steps


def _log(work: Path, step: Step) -> None:
    with (work / "steps.jsonl").open("a") as f:
        f.write(json.dumps(asdict(step)) + "\n")
    print(f"bisect: {step.commit[:12]} try {step.attempt}: {step.verdict} ({step.reason}) "
          f"in {step.seconds:.0f}s", flush=True)


def read_steps(work: Path) -> list[Step]:
    path = work / "steps.jsonl"
    if not path.is_file():
        return []
    return [Step(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _resolve(ksrc: Path, rev: str, what: str) -> str:
    if not g.git_ok(ksrc, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"):
        raise HarnessError(f"{ksrc}: unknown revision '{rev}' given as --{what}")
    return g.rev_parse(ksrc, f"{rev}^{{commit}}")


def validate_bisect(opts: RunOptions, good: str, bad: str, tries: int) -> tuple[Path, str, str]:
    """The arguments of a bisect, checked before anything is written: the
    tree's top, the good and the bad commit."""
    if opts.ksrc is None:
        raise HarnessError("bisect needs --ksrc TREE: the git tree whose history to search")
    if tries < 1:
        raise HarnessError("--tries must be at least 1")
    if opts.series is not None:
        raise HarnessError("bisect tests the commits of --ksrc as they are; --series does not apply")
    ksrc = opts.ksrc.expanduser().resolve()
    if not g.git_ok(ksrc, "rev-parse", "--git-dir"):
        raise HarnessError(f"--ksrc {ksrc} is not a git repository")
    ksrc = Path(g.git(ksrc, "rev-parse", "--show-toplevel").strip())
    if not looks_like_kernel(ksrc):
        raise HarnessError(f"--ksrc {ksrc} is not a kernel source tree", hint="pass the top of a Linux git tree")
    good_sha, bad_sha = _resolve(ksrc, good, "good"), _resolve(ksrc, bad, "bad")
    if good_sha == bad_sha:
        raise HarnessError("--good and --bad are the same commit")
    if not g.git_ok(ksrc, "merge-base", "--is-ancestor", good_sha, bad_sha):
        raise HarnessError(f"--good {good} is not an ancestor of --bad {bad}")
    return ksrc, good_sha, bad_sha


def bisect(opts: RunOptions, good: str, bad: str, tries: int) -> BisectResult:
    ksrc, good_sha, bad_sha = validate_bisect(opts, good, bad, tries)
    cache = cache_dir(opts.cache)
    work = workdir(cache, ksrc, good_sha, bad_sha)
    opts.ksrc, opts.cache = ksrc, cache
    with locked(cache, f"bisect-{work.name}"):
        return _bisect_locked(opts, work, ksrc, good_sha, bad_sha, tries)


def _bisect_locked(opts: RunOptions, work: Path, ksrc: Path, good: str, bad: str, tries: int) -> BisectResult:
    repo = work / "repo.git"
    if not (repo / "HEAD").exists():
        work.mkdir(parents=True, exist_ok=True)
        tmp = work / "repo.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        g.run_git_plain(["clone", "-q", "--shared", "--bare", str(ksrc), str(tmp)])
        tmp.rename(repo)
    state = {"ksrc": str(ksrc), "good": good, "bad": bad, "tries": tries, "options": _options_to_json(opts)}
    (work / "bisect.json").write_text(json.dumps(state, indent=2) + "\n")

    in_progress = g.git_ok(repo, "rev-parse", "--verify", "--quiet", "BISECT_HEAD")
    if in_progress:
        print(f"bisect: resuming in {work} after {len(read_steps(work))} logged step(s)", flush=True)
    else:
        (work / "steps.jsonl").unlink(missing_ok=True)  # a finished earlier bisection's log
        # The endpoints first: a bisection between two bad or two good
        # commits names a wrong commit with full confidence.
        verdict, _ = run_step(work, bad)
        if verdict != BAD:
            raise HarnessError(f"--bad {bad[:12]} does not fail (verdict: {_NAMES[verdict]}); nothing to bisect",
                               hint=f"see the step logs in {work / 'steps'}")
        verdict, steps = run_step(work, good)
        if verdict == ABORT:
            raise HarnessError(f"--good {good[:12]} could not be tested: {steps[-1].reason if steps else 'aborted'}",
                               hint=f"step logs in {work / 'steps'}")
        if verdict != GOOD:
            raise HarnessError(f"--good {good[:12]} does not pass (verdict: {_NAMES[verdict]})",
                               hint=f"pick an older good commit; step logs in {work / 'steps'}")
        g.git(repo, "bisect", "start", "--no-checkout", bad, good)
    step_cmd = [sys.executable, "-m", "harness.bisect", "step", str(work)]
    returncode, output = _tee(["git", "-C", str(repo), "bisect", "run", *step_cmd])
    result = _parse_outcome(repo, output, read_steps(work))
    if result.first_bad is not None or result.candidates:
        g.git(repo, "bisect", "reset")
    elif returncode != 0:
        steps = read_steps(work)
        why = f": {steps[-1].commit[:12]} {steps[-1].reason}" if steps and steps[-1].verdict == "abort" else ""
        raise HarnessError(f"git bisect run stopped without an answer (a step aborted{why}); run the same "
                           f"command again to resume", detail=output[-2000:])
    return result


def _tee(cmd: list[str]) -> tuple[int, str]:
    """Run cmd, echoing its output as it comes; return status and output.
    Interrupted, or should the harness die, the command's whole group (the
    step, its build or guest) is stopped."""
    with Group(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
               cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **g.C_LOCALE}) as group:
        lines = []
        assert group.proc.stdout is not None
        for line in group.proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        return group.proc.wait(), "".join(lines)


_NAMES = {GOOD: "good", BAD: "bad", SKIP: "skip", ABORT: "abort"}


def _parse_outcome(repo: Path, output: str, steps: list[Step]) -> BisectResult:
    """What git bisect run found. Its output is read in the C locale (_tee);
    the answer itself is refs/bisect/bad, where git leaves it."""
    if "is the first bad commit" in output and g.git_ok(repo, "rev-parse", "--verify", "--quiet", "refs/bisect/bad"):
        first = g.rev_parse(repo, "refs/bisect/bad")
        return BisectResult(first, _subject(repo, first), [], steps)
    if "only 'skip'ped commits left" in output:
        cands = [line.split()[0] for line in output.split("could be any of:", 1)[-1].splitlines()
                 if len(line.split()) == 1 and len(line.strip()) == 40]
        return BisectResult(None, "", cands, steps)
    return BisectResult(None, "", [], steps)


def render(result: BisectResult) -> str:
    out = ["isolharness bisect", f"  {'commit':<12} {'try':>3}  {'verdict':<7} {'time':>6}  subject / reason"]
    for s in result.steps:
        out.append(f"  {s.commit[:12]:<12} {s.attempt:>3}  {s.verdict:<7} {s.seconds:>5.0f}s  "
                   f"{s.subject[:50]} ({s.reason})")
    if result.first_bad:
        out.append(f"\nfirst bad commit: {result.first_bad} {result.subject}")
    elif result.candidates:
        out.append("\nskipped commits hide the first bad one; it is one of:")
        out.extend(f"  {c}" for c in result.candidates)
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """``python -m harness.bisect step WORKDIR``: one git bisect run step."""
    if len(argv) != 2 or argv[0] != "step":
        print("usage: python -m harness.bisect step WORKDIR", file=sys.stderr)
        return ABORT
    g.scrub_repo_env()  # git bisect run exports GIT_DIR of the bisect clone
    # A SIGTERM (the bisect stopped, a CI job cancelled) unwinds the step
    # like Ctrl-C: its build or guest is stopped and the step aborts.
    interrupt_on_signals()
    try:
        verdict, _ = run_step(Path(argv[1]))
    except Exception as exc:  # a bug of ours too: never "bad" (exit 1) for the commit
        print(as_harness_error(exc).render(), file=sys.stderr)
        return ABORT
    except KeyboardInterrupt:
        print("bisect step: interrupted", file=sys.stderr)
        return ABORT
    return verdict


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
