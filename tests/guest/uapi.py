"""Constants from the uapi headers the build installed, never retyped.

A tiny C program including the headers prints each constant; the values
come from the kernel under test, not from a copy in this repository.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


class HeaderMissing(Exception):
    """The installed headers do not define what was asked for."""


def constants(headers: Path, includes: list[str], names: list[str]) -> dict[str, int]:
    src = "".join(f"#include <{inc}>\n" for inc in ["stdio.h", *includes])
    src += "int main(void)\n{\n"
    for name in names:
        src += f'\tprintf("%s=%lld\\n", "{name}", (long long)({name}));\n'
    src += "\treturn 0;\n}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "consts.c"
        exe = Path(tmp) / "consts"
        c.write_text(src)
        res = subprocess.run(["gcc", "-I", str(headers), "-o", str(exe), str(c)], capture_output=True, text=True)
        if res.returncode != 0:
            raise HeaderMissing(f"{', '.join(includes)} from {headers} lack some of {', '.join(names)}:\n"
                                + res.stderr[-1500:])
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.rsplit("=", 1) for line in out.splitlines())}


def struct_size(headers: Path, includes: list[str], struct: str) -> int:
    return constants(headers, includes, [f"sizeof(struct {struct})"])[f"sizeof(struct {struct})"]
