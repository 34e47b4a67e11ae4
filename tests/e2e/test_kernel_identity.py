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
import time
from pathlib import Path

from junitparser import Error

from conftest import git, run_cli, user_tree

PIGGY = Path("arch/x86/boot/compressed/piggy.o")
STAMP = ".isolharness-build-stamp"


def build_dir_of(run) -> Path:
    line = next(ln for ln in (run.results / "build.log").read_text().splitlines() if ln.startswith("$ make"))
    return Path(next(w for w in line.split() if w.startswith("O="))[2:])


def test_incremental_rebuilds_boot_the_new_kernel_and_a_stale_image_is_caught(results_root):
    user = user_tree("identity-linux", "loop", results_root)
    revs = []
    for n in (1, 2):
        f = user / "kernel" / "sys.c"
        f.write_text(f.read_text().replace("#include", f"/* e2e identity {n} */\n#include", 1))
        git(user, "commit", "-q", "-a", "-m", f"sys: identity step {n}")
        revs.append(git(user, "rev-parse", "HEAD").strip())

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
        assert "verdict: ERROR" in stale.output
        assert stale.properties()["kernel_version"] == p1["built_version"]
    finally:
        (bdir / PIGGY).unlink(missing_ok=True)
        (bdir / STAMP).unlink(missing_ok=True)
