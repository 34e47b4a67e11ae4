"""A stand-in vmlinux for unit tests of kernel identity: a real ELF that gcc
and ld make, with a GNU build-id note and a kernel banner in its rodata."""

from __future__ import annotations

import subprocess
from pathlib import Path

RELEASE = "6.12.0-unit"


def banner(number: int, release: str = RELEASE) -> str:
    return (f"Linux version {release} (isolharness@isolharness) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, "
            f"GNU ld (GNU Binutils for Debian) 2.40) #{number} SMP PREEMPT_DYNAMIC isolharness")


def make_vmlinux(build_dir: Path, number: int, release: str = RELEASE, salt: str = "",
                 strip: bool = False) -> Path:
    """build_dir/vmlinux and include/config/kernel.release as Kbuild leaves
    them; ``salt`` changes the contents (and so the build-id) only. Like a
    real vmlinux it also carries init/version.o's provisional banner, with
    no build number, ahead of the real one."""
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / "banner.c"
    text = banner(number, release).replace('"', '\\"')
    provisional = text.replace(f"#{number} ", "# ")
    src.write_text(f'const char early_banner[] = "{provisional}\\n";\n'
                   f'const char linux_banner[] = "{text}\\n";\n'
                   f'const char salt[] = "{salt}";\n'
                   "int main(void) { return early_banner[0] + linux_banner[0] + salt[0]; }\n")
    subprocess.run(["gcc", "-O0", "-Wl,--build-id=sha1", *(["-s"] if strip else []),
                    "-o", str(build_dir / "vmlinux"), str(src)], check=True)
    (build_dir / "include" / "config").mkdir(parents=True, exist_ok=True)
    (build_dir / "include" / "config" / "kernel.release").write_text(release + "\n")
    return build_dir / "vmlinux"


def readelf_build_id(path: Path) -> str:
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    return ""
