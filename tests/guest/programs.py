"""The C programs the guest tests run, built against the installed uapi
headers of the kernel under test.

The guest runs on the host's root file system, so the guest's gcc and the
host's are one binary reading one set of headers. Compiling under TCG takes
seconds per program, natively a fraction of one: before boot the harness
runs ``python tests/guest/programs.py DIR`` on the host, which builds every
program of the catalogue below into DIR, and passes DIR to the guest as
$ISOLHARNESS_PREBUILT. A program is found there by a digest of everything
that goes into it (sources, flags, headers path); when it is not there (a
remote target, a recipe that changed) the test builds it in place, with the
same result. A failed build is a result too: its compiler errors are kept
and reported by the test that needed the program.

Constants come from the headers through a generated program that prints
them: values are those of the kernel under test, never retyped here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

RESULT = "result.json"


@dataclass(frozen=True)
class Recipe:
    name: str
    sources: tuple[tuple[str, str], ...]    # (file name, text); the .c files are compiled, in order
    flags: tuple[str, ...] = ()

    def digest(self, headers: Path) -> str:
        h = hashlib.sha256(json.dumps([self.name, self.flags, str(headers), self.sources]).encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    exe: Path | None        # None: the build failed
    errors: str             # the compiler's messages when it failed


def build(recipe: Recipe, headers: Path, out: Path) -> Built:
    """Compile ``recipe`` into its own directory under ``out``."""
    where = out / f"{recipe.name}-{recipe.digest(headers)}"
    where.mkdir(parents=True, exist_ok=True)
    for fname, text in recipe.sources:
        (where / fname).write_text(text)
    exe = where / recipe.name
    res = subprocess.run(["gcc", *recipe.flags, "-I", str(headers), "-o", str(exe),
                          *[str(where / fname) for fname, _ in recipe.sources if fname.endswith(".c")]],
                         capture_output=True, text=True)
    built = Built(exe if res.returncode == 0 else None, res.stderr if res.returncode else "")
    (where / RESULT).write_text(json.dumps({"ok": built.exe is not None, "errors": built.errors}))
    return built


def _prebuilt(recipe: Recipe, headers: Path) -> Built | None:
    pre = os.environ.get("ISOLHARNESS_PREBUILT")
    if not pre:
        return None
    where = Path(pre) / f"{recipe.name}-{recipe.digest(headers)}"
    try:
        result = json.loads((where / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return Built(where / recipe.name if result["ok"] else None, result["errors"])


def obtain(recipe: Recipe, headers: Path) -> Built:
    """The program built from ``recipe``: prebuilt by the host if it was,
    otherwise built now in a fresh temporary directory."""
    return _prebuilt(recipe, headers) or build(recipe, headers, Path(tempfile.mkdtemp(prefix="isolharness-")))


# ---------------------------------------------------------------- constants

class HeaderMissing(Exception):
    """The installed headers do not define what was asked for."""


def constants_recipe(name: str, includes: tuple[str, ...], names: tuple[str, ...]) -> Recipe:
    src = "".join(f"#include <{inc}>\n" for inc in ["stdio.h", *includes])
    src += "int main(void)\n{\n"
    for n in names:
        src += f'\tprintf("%s=%lld\\n", "{n}", (long long)({n}));\n'
    src += "\treturn 0;\n}\n"
    return Recipe(name, ((f"{name}.c", src),))


def constants(recipe: Recipe, headers: Path) -> dict[str, int]:
    """Run a program made by constants_recipe(): {name: value}."""
    built = obtain(recipe, headers)
    if built.exe is None:
        raise HeaderMissing(f"the headers in {headers} lack some of what {recipe.name} prints:\n"
                            + built.errors[-1500:])
    out = subprocess.run([str(built.exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.rsplit("=", 1) for line in out.splitlines())}


# ---------------------------------------------------------------- catalogue

TASK_ISOLATION_UAPI = constants_recipe(
    "task-isolation-uapi", ("linux/prctl.h", "linux/task_isolation.h"),
    ("PR_ISOL_FEAT", "PR_ISOL_GET", "PR_ISOL_SET", "PR_ISOL_CTRL_GET", "PR_ISOL_CTRL_SET",
     "PR_ISOL_GET_INT", "PR_ISOL_SET_INT", "ISOL_F_QUIESCE", "ISOL_F_QUIESCE_VMSTATS", "INHERIT_CFG",
     "ISOL_INHERIT_CONF", "ISOL_INHERIT_ACTIVE", "sizeof(struct task_isol_inherit_control)"))

USERLOOP_DIR = Path("samples") / "task_isolation"
USERLOOP_SOURCES = ("task_isol.c", "task_isol_userloop.c")


def userloop_sample(ksrc: Path) -> Recipe | None:
    """samples/task_isolation of the tree under test, built as its Makefile
    would not: with -Wall -Werror against the installed headers. None when
    the tree has no such sample."""
    src = ksrc / USERLOOP_DIR
    if not all((src / f).is_file() for f in USERLOOP_SOURCES):
        return None
    files = [*sorted(p.name for p in src.glob("*.h")), *USERLOOP_SOURCES]
    return Recipe("task_isol_userloop", tuple((f, (src / f).read_text()) for f in files), ("-Wall", "-Werror"))


# An active task frees shmem pages in task work on its way back to user
# space, then spins there without a system call or a fault: written in C,
# because a Python child takes copy-on-write faults after any call, and the
# exit of each fault folds the differential anyway.
DEFERRED_FPUT = Recipe(
    "deferred_fput", (("deferred_fput.c", (Path(__file__).parent / "deferred_fput.c").read_text()),),
    ("-Wall", "-Werror", "-O2"))


def catalogue(ksrc: Path) -> list[Recipe]:
    sample = userloop_sample(ksrc)
    return [TASK_ISOLATION_UAPI, DEFERRED_FPUT, *([sample] if sample else [])]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: programs.py OUTDIR  (with ISOLHARNESS_HEADERS and ISOLHARNESS_KSRC set)", file=sys.stderr)
        return 2
    headers = Path(os.environ["ISOLHARNESS_HEADERS"])
    ksrc = Path(os.environ["ISOLHARNESS_KSRC"])
    for recipe in catalogue(ksrc):
        built = build(recipe, headers, Path(argv[1]))
        print(f"{recipe.name}: {'built' if built.exe else 'does not build (kept for the test to report)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
