"""The build stamp: make is skipped only when the tree commit, the .config
and the image are those of the last successful build and no file of the
tree changed since; anything else runs make."""

import os
import time

import pytest

from harness.build import HEADERS, IMAGE, STAMP, _image_id, build_kernel, full_stamp
from harness.errors import BuildError

from fakekernel import make_vmlinux


@pytest.fixture
def built(tmp_path):
    tree, bdir = tmp_path / "tree", tmp_path / "build"
    (tree / "kernel").mkdir(parents=True)
    (tree / "kernel" / "sys.c").write_text("int x;\n")
    (bdir / IMAGE).parent.mkdir(parents=True)
    (bdir / IMAGE).write_bytes(b"image")
    (bdir / HEADERS / "linux").mkdir(parents=True)
    (bdir / ".config").write_text("CONFIG_X=y\n")
    make_vmlinux(bdir, 4)
    time.sleep(0.01)
    (bdir / STAMP).write_text(f"{full_stamp('abc:123')} {_image_id(bdir)}\n")
    return tree, bdir


def test_unchanged_build_skips_make(built, tmp_path):
    tree, bdir = built
    kb = build_kernel(tree, bdir, tmp_path / "cache", tmp_path / "build.log", stamp="abc:123", trust_stamp=True)
    assert kb.objects == 0 and kb.image == bdir / IMAGE
    assert kb.identity.build_number == "4" and kb.banner.endswith("#4 SMP PREEMPT_DYNAMIC isolharness")
    assert "up to date" in (tmp_path / "build.log").read_text()


@pytest.mark.parametrize("change", ["stamp", "untrusted", "touched", "image"])
def test_any_change_runs_make(built, tmp_path, change):
    tree, bdir = built
    stamp, trust = "abc:123", True
    if change == "stamp":
        stamp = "def:123"
    elif change == "untrusted":
        trust = False
    elif change == "touched":
        future = time.time() + 5
        os.utime(tree / "kernel" / "sys.c", (future, future))
    elif change == "image":
        (bdir / IMAGE).write_bytes(b"another image")
    # The tree has no Makefile: reaching make shows up as a failed build.
    with pytest.raises(BuildError):
        build_kernel(tree, bdir, tmp_path / "cache", tmp_path / "build.log", stamp=stamp, trust_stamp=trust)
    assert not (bdir / STAMP).exists()


def test_the_commit_an_image_was_built_from(built):
    """What `isolharness boot` checks before booting the kernel built last:
    the stamp's commit, for the very image it stamped; nothing otherwise."""
    from harness.build import built_commit

    _, bdir = built
    assert built_commit(bdir) == "abc"
    (bdir / IMAGE).write_bytes(b"another image")       # relinked since: the stamp is not its
    os.utime(bdir / IMAGE, ns=(1, 1))
    assert built_commit(bdir) is None
    (bdir / STAMP).unlink()                             # a build that failed or a series walk
    assert built_commit(bdir) is None
