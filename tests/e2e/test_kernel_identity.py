"""The kernel that boots is the kernel that was built.

One tree, two commits built one after the other (incremental, as in a
developer's loop or a bisect): the second boot runs the second kernel, and
the run's properties carry its identity. Then the stale-kernel case as
ccache's depend mode produced it (an .incbin'd payload ccache could not
see): arch/x86/boot/compressed/piggy.o put back from the first build, so the
image links the first kernel while vmlinux is the second. The guard must
call that an error of the boot stage, name both kernels, and report none of
that kernel's test results."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from junitparser import Error

from conftest import ISOLHARNESS, PROJECT, Run, git, run_cli, user_tree

PIGGY = Path("arch/x86/boot/compressed/piggy.o")
STAMP = ".isolharness-build-stamp"


def build_dir_of(run) -> Path:
    # From the run's properties: build.log names it only when make ran, and
    # a tree kept from an earlier run of this suite may be up to date.
    return Path(run.properties()["build_dir"])


@pytest.fixture(scope="module")
def loop_tree(results_root) -> tuple[Path, list[str]]:
    """A user's tree with two one-line commits on the pristine base."""
    user = user_tree("identity-linux", "loop", results_root)
    revs = []
    for n in (1, 2):
        f = user / "kernel" / "sys.c"
        f.write_text(f.read_text().replace("#include", f"/* e2e identity {n} */\n#include", 1))
        git(user, "commit", "-q", "-a", "-m", f"sys: identity step {n}")
        revs.append(git(user, "rev-parse", "HEAD").strip())
    return user, revs


def test_incremental_rebuilds_boot_the_new_kernel_and_a_stale_image_is_caught(results_root, loop_tree):
    user, revs = loop_tree
    args = ["--ksrc", str(user), "--series", "none", "-k", "smoke"]
    first = run_cli(["check", *args, "--rev", revs[0]], results_root / "ident-1")
    assert first.rc == 0, first.output
    p1 = first.properties()
    assert p1["kernel_version"] == p1["built_version"] and p1["kernel_build_id"] == p1["built_build_id"]
    bdir = build_dir_of(first)
    saved = results_root / "piggy-of-first.o"
    shutil.copy2(bdir / PIGGY, saved)

    second = run_cli(["check", *args, "--rev", revs[1]], results_root / "ident-2")
    assert second.rc == 0, second.output
    p2 = second.properties()
    assert p2["kernel_build_id"] == p2["built_build_id"] != p1["built_build_id"]
    assert int(p2["built_version"][1:].split()[0]) > int(p1["built_version"][1:].split()[0])
    assert "ran          the kernel built" in second.output

    try:
        # What a stale ccache hit leaves: the first kernel's payload object,
        # newer than its inputs, so make links it into the image.
        shutil.copy(saved, bdir / PIGGY)
        now = time.time() + 2
        os.utime(bdir / PIGGY, (now, now))
        (bdir / STAMP).unlink()
        stale = run_cli(["check", *args, "--rev", revs[1]], results_root / "ident-stale")
        assert stale.rc == 2, stale.output
        boot = stale.cases()["isolharness.stages::boot"]
        err = [r for r in boot.result if isinstance(r, Error)]
        assert err and "booted another kernel than the one built" in err[0].message, stale.output
        assert p1["built_version"] in err[0].message and p2["built_version"] in err[0].message
        assert not [n for n in stale.cases() if n.startswith("guest::")]
        assert "verdict: MISS" in stale.output  # the environment (the build) failed, not the kernel
        assert stale.properties()["kernel_version"] == p1["built_version"]
    finally:
        (bdir / PIGGY).unlink(missing_ok=True)
        (bdir / STAMP).unlink(missing_ok=True)


def test_two_runs_of_one_tree_at_other_revisions_build_and_label_their_own(results_root, loop_tree):
    # They share a worktree and a build directory: the second waits for the
    # first from apply to boot, instead of checking its commit out beneath it.
    user, revs = loop_tree
    procs = [subprocess.Popen([str(ISOLHARNESS), "check", "--results", str(results_root / f"ident-par-{i}"),
                               "--ksrc", str(user), "--series", "none", "-k", "smoke", "--rev", rev],
                              cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, rev in enumerate(revs)]
    outs = [p.communicate(timeout=3600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for" in o for o in outs), outs
    props = [Run(0, o, results_root / f"ident-par-{i}").properties() for i, o in enumerate(outs)]
    assert [p["head_commit"] for p in props] == revs
    for p in props:
        assert p["kernel_build_id"] == p["built_build_id"]
    assert props[0]["built_build_id"] != props[1]["built_build_id"]
    # The build directory now holds the kernel of the run that waited: booting
    # it under the other revision's name is refused, before any boot.
    last = next(i for i, o in enumerate(outs) if "waiting for" in o)
    other = revs[1 - last]
    boot = run_cli(["boot", "--ksrc", str(user), "--series", "none", "-k", "smoke", "--rev", other],
                   results_root / "ident-boot-other")
    assert boot.rc == 2, boot.output
    assert f"is of commit {revs[last][:12]}, not of {other[:12]}" in boot.output, boot.output
    assert "boot: guest" not in boot.output
