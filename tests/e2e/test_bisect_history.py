"""`isolharness bisect` on a real history: the pristine base, the
block-interf series as commits, harmless commits around one that drops the
CAP_SYS_ADMIN check of /sys/devices/system/cpu/block_interf (which a guest
test checks). The bisect must name that commit and leave the tree as it
found it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from conftest import ISOLHARNESS, PROJECT, git, qemu_processes, run_cli, user_tree

CAP_CHECK = "\tif (!capable(CAP_SYS_ADMIN))\n\t\treturn -EPERM;\n\n"


def german(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose locale is German: de_DE.UTF-8,
    compiled into tmp_path (the system's locale archive is left alone);
    checked to make git speak German."""
    import os

    locales = tmp_path / "locales"
    locales.mkdir()
    subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")], check=True,
                   capture_output=True)
    env = {**os.environ, "LOCPATH": str(locales), "LANG": "de_DE.UTF-8", "LC_ALL": "de_DE.UTF-8"}
    said = subprocess.run(["git", "bisect", "log"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert "Kein Git-Repository" in said.stderr, said.stderr   # English: "not a git repository"
    return env


def snapshot(repo: Path) -> dict[str, str]:
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    return {"head": git(repo, "rev-parse", "HEAD"), "branch": git(repo, "symbolic-ref", "-q", "HEAD"),
            "status": git(repo, "status", "--porcelain"), "refs": git(repo, "for-each-ref"),
            "bisect": str(sorted(p.name for p in git_dir.glob("BISECT_*")))}


def test_bisect_names_the_breaking_commit_and_leaves_the_tree_alone(tmp_path, results_root):
    user = user_tree("bisect-linux", "isol", results_root)
    d = PROJECT / "patches" / "block-interf"
    patches = [str(d / n) for n in (d / "series").read_text().split() if n.endswith(".patch")]
    git(user, "am", "-q", *patches)
    git(user, "tag", "series-top")

    def commit(path: str, old: str, new: str, subject: str) -> str:
        f = user / path
        text = f.read_text()
        assert old in text, (path, old)
        f.write_text(text.replace(old, new, 1))
        git(user, "commit", "-q", "-a", "-m", subject)
        return git(user, "rev-parse", "HEAD").strip()

    commit("kernel/sys.c", "#include", "/* e2e: harmless 1 */\n#include", "sys: harmless comment 1")
    breaking = commit("drivers/base/cpu.c", CAP_CHECK, "", "cpu: let anyone write block_interf")
    commit("kernel/sys.c", "/* e2e: harmless 1 */", "/* e2e: harmless 2 */", "sys: harmless comment 2")
    commit("kernel/sys.c", "/* e2e: harmless 2 */", "/* e2e: harmless 3 */", "sys: harmless comment 3")
    before = snapshot(user)
    args = ["--ksrc", str(user), "--good", "series-top", "--bad", "HEAD", "--tries", "2",
            "-k", "unprivileged", "--expect", "block-interf"]

    # SIGTERM (a CI job cancelled) in the middle of a bisect step: the step's
    # guest goes with it, and the same command afterwards resumes.
    from harness.bisect import workdir
    from harness.cache import cache_dir

    work = workdir(cache_dir(), user.resolve(), git(user, "rev-parse", "series-top").strip(),
                   git(user, "rev-parse", "HEAD").strip())
    log = tmp_path / "bisect-term.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(ISOLHARNESS), "bisect", "--results", str(results_root / "bisect-term"), *args],
                                cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 2400
        while time.monotonic() < deadline and proc.poll() is None:
            steps = (work / "steps.jsonl").read_text().splitlines() if (work / "steps.jsonl").is_file() else []
            if len(steps) >= 2 and (work / "repo.git" / "BISECT_START").is_file() and qemu_processes():
                break
            time.sleep(1)
        assert proc.poll() is None and qemu_processes(), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(10)
    assert not qemu_processes(), "a guest outlived the SIGTERMed bisect"

    # Resumed in a German locale: git's messages change language, its
    # answer must still be read (the harness runs git in the C locale).
    run = run_cli(["bisect", *args], results_root / "bisect", env=german(tmp_path))
    assert run.rc == 0, run.output
    assert "bisect: resuming in" in run.output
    assert f"first bad commit: {breaking} cpu: let anyone write block_interf" in run.output
    result = json.loads((run.results / "bisect.json").read_text())
    assert result["first_bad"] == breaking
    verdicts = {(s["commit"], s["verdict"]) for s in result["steps"]}
    assert (breaking, "bad") in verdicts
    assert (git(user, "rev-parse", "series-top").strip(), "good") in verdicts
    assert snapshot(user) == before


def test_bisect_bad_arguments(tmp_path):
    run = run_cli(["bisect", "--good", "a", "--bad", "b"], tmp_path / "r")
    assert run.rc == 2 and "needs --ksrc" in run.output
    (tmp_path / "notkernel").mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path / "notkernel")], check=True)
    run = run_cli(["bisect", "--ksrc", str(tmp_path / "notkernel"), "--good", "a", "--bad", "b"], tmp_path / "r")
    assert run.rc == 2 and "not a kernel source tree" in run.output
