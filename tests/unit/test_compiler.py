"""The compiler the harness hands Kbuild, with the real gcc and ccache: an
object whose source .incbin's a file must follow that file, where plain
ccache in depend mode hands back the object of an earlier payload (the stale
piggy.o that booted an older kernel); everything else is still cached."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.build import compiler
from harness.ccache import ccache_env

pytestmark = pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed (make deps)")

PIGGY = """.section ".rodata..compressed","a",@progbits
.globl z_input_len
z_input_len = 5
input_data:
.incbin "payload.bin"
input_data_end:
"""


def compile_with(cc: list[str], cache: Path, work: Path, src: str) -> bytes:
    env = {**os.environ, **ccache_env(cache)}
    subprocess.run([*cc, f"-Wp,-MMD,{work / 'dep.d'}", "-c", "-o", "out.o", src], cwd=work, env=env,
                   check=True, capture_output=True)
    return subprocess.run(["objcopy", "-O", "binary", "-j", ".rodata..compressed", "out.o", "/dev/stdout"],
                          cwd=work, capture_output=True, check=True).stdout


def stats(cache: Path) -> str:
    return subprocess.run(["ccache", "--print-stats"], env={**os.environ, **ccache_env(cache)},
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def work(tmp_path):
    w = tmp_path / "build"
    w.mkdir()
    (w / "piggy.S").write_text(PIGGY)
    return w


def test_plain_ccache_in_depend_mode_serves_a_stale_payload(tmp_path, work):
    # The failure the harness's compiler exists to prevent, shown for real.
    (work / "payload.bin").write_bytes(b"KERNEL-A")
    assert compile_with(["ccache", "gcc"], tmp_path, work, "piggy.S") == b"KERNEL-A"
    (work / "payload.bin").write_bytes(b"KERNEL-B")
    assert compile_with(["ccache", "gcc"], tmp_path, work, "piggy.S") == b"KERNEL-A"


def test_incbin_sources_follow_their_payload(tmp_path, work):
    cc = [str(compiler(tmp_path))]
    for payload in (b"KERNEL-A", b"KERNEL-B", b"KERNEL-A"):
        (work / "payload.bin").write_bytes(payload)
        assert compile_with(cc, tmp_path, work, "piggy.S") == payload


def test_incbin_through_an_include_is_left_to_ccaches_own_check(tmp_path, work):
    # The source does not name .incbin itself; the preprocessor brings it.
    (work / "blob.h").write_text('#define BLOB .incbin "payload.bin"\n')
    (work / "indirect.S").write_text('#include "blob.h"\n.section ".rodata..compressed","a",@progbits\nBLOB\n')
    cc = [str(compiler(tmp_path))]
    for payload in (b"KERNEL-A", b"KERNEL-B"):
        (work / "payload.bin").write_bytes(payload)
        assert compile_with(cc, tmp_path, work, "indirect.S") == payload
    assert "nsupported code directive" in stats(tmp_path) or "unsupported_code_directive" in stats(tmp_path)


def test_c_sources_without_incbin_are_still_cached(tmp_path, work):
    (work / "plain.c").write_text('const char x[] __attribute__((section(".rodata..compressed"))) = "C";\n')
    cc = [str(compiler(tmp_path))]
    compile_with(cc, tmp_path, work, "plain.c")
    compile_with(cc, tmp_path, work, "plain.c")
    out = subprocess.run(["ccache", "--print-stats"], env={**os.environ, **ccache_env(tmp_path)},
                         capture_output=True, text=True, check=True).stdout
    hits = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    assert int(hits.get("direct_cache_hit", 0)) == 1


def test_the_script_is_rewritten_only_when_its_text_changes(tmp_path):
    path = compiler(tmp_path)
    mtime = path.stat().st_mtime_ns
    assert compiler(tmp_path) == path and path.stat().st_mtime_ns == mtime
    path.write_text("#!/bin/sh\nexit 1\n")
    assert compiler(tmp_path).read_text().startswith("#!/bin/sh\n# Written by isolharness")
    assert os.access(path, os.X_OK)
