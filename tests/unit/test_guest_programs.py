"""tests/guest/programs.py: the guest suite's C programs, prebuilt on the
host or built in place, with the host's real gcc against small headers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

GUEST = Path(__file__).resolve().parents[1] / "guest"
_spec = importlib.util.spec_from_file_location("guest_programs", GUEST / "programs.py")
programs = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = programs      # dataclasses look their module up there
_spec.loader.exec_module(programs)


@pytest.fixture
def headers(tmp_path: Path) -> Path:
    inc = tmp_path / "usr" / "include"
    (inc / "linux").mkdir(parents=True)
    (inc / "linux" / "demo.h").write_text("#define DEMO_A 90\n#define DEMO_B (1UL << 40)\n"
                                          "struct demo { unsigned char m; unsigned char pad[7]; };\n")
    return inc


@pytest.fixture(autouse=True)
def no_prebuilt(monkeypatch, tmp_path):
    monkeypatch.delenv("ISOLHARNESS_PREBUILT", raising=False)
    # Builds in place go to a temporary directory: keep them in this test's.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def recipe(*names: str):
    return programs.constants_recipe("demo-uapi", ("linux/demo.h",), names)


def test_constants_come_from_the_headers(headers):
    got = programs.constants(recipe("DEMO_A", "DEMO_B", "sizeof(struct demo)"), headers)
    assert got == {"DEMO_A": 90, "DEMO_B": 1 << 40, "sizeof(struct demo)": 8}


def test_a_constant_the_headers_lack_raises_with_the_compiler_error(headers):
    with pytest.raises(programs.HeaderMissing, match="DEMO_C"):
        programs.constants(recipe("DEMO_A", "DEMO_C"), headers)


def test_host_prebuild_is_used_and_a_changed_recipe_is_not(headers, tmp_path, monkeypatch):
    out = tmp_path / "prebuilt"
    wanted = recipe("DEMO_A")
    assert programs.build(wanted, headers, out).exe is not None
    monkeypatch.setenv("ISOLHARNESS_PREBUILT", str(out))
    assert programs.obtain(wanted, headers).exe.parent.parent == out
    changed = recipe("DEMO_A", "DEMO_B")
    assert programs.obtain(changed, headers).exe.parent.parent != out
    # The same recipe against other headers is another program too.
    other = tmp_path / "other"
    (other / "linux").mkdir(parents=True)
    (other / "linux" / "demo.h").write_text("#define DEMO_A 91\n")
    assert programs.constants(wanted, other) == {"DEMO_A": 91}


def test_a_prebuilt_failure_is_reported_not_rebuilt(headers, tmp_path, monkeypatch):
    out = tmp_path / "prebuilt"
    broken = recipe("DEMO_MISSING")
    built = programs.build(broken, headers, out)
    assert built.exe is None and "DEMO_MISSING" in built.errors
    # The guest must report the host's errors: make a rebuild impossible.
    (headers / "linux" / "demo.h").write_text("#define DEMO_MISSING 1\n")
    monkeypatch.setenv("ISOLHARNESS_PREBUILT", str(out))
    with pytest.raises(programs.HeaderMissing, match="DEMO_MISSING"):
        programs.constants(broken, headers)


def test_sample_recipe_takes_the_local_header_and_needs_both_sources(tmp_path):
    ksrc = tmp_path / "linux"
    assert programs.userloop_sample(ksrc) is None
    sample = ksrc / programs.USERLOOP_DIR
    sample.mkdir(parents=True)
    (sample / "task_isol.h").write_text("int helper(void);\n")
    (sample / "task_isol.c").write_text('#include "task_isol.h"\nint helper(void) { return 0; }\n')
    assert programs.userloop_sample(ksrc) is None
    (sample / "task_isol_userloop.c").write_text('#include "task_isol.h"\nint main(void) { return helper(); }\n')
    r = programs.userloop_sample(ksrc)
    assert [name for name, _ in r.sources] == ["task_isol.h", "task_isol.c", "task_isol_userloop.c"]
    built = programs.build(r, tmp_path, tmp_path / "out")
    assert built.exe is not None, built.errors
    assert subprocess.run([str(built.exe)]).returncode == 0


def test_main_builds_the_catalogue(headers, tmp_path, monkeypatch):
    monkeypatch.setenv("ISOLHARNESS_HEADERS", str(headers))
    monkeypatch.setenv("ISOLHARNESS_KSRC", str(tmp_path / "no-such-tree"))
    out = tmp_path / "prebuilt"
    res = subprocess.run([sys.executable, str(GUEST / "programs.py"), str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # These headers lack the task isolation uapi: recorded as a failed build.
    assert "task-isolation-uapi: does not build" in res.stdout
    assert len(list(out.glob("task-isolation-uapi-*/result.json"))) == 1
