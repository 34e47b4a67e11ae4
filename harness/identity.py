"""Which kernel is this: the identity of a built vmlinux, of the kernel that
announced itself on a console, and of the kernel a guest or a target runs.

A build is identified by its banner (``Linux version RELEASE (...) #N ...``,
the string the kernel prints first, with the build number Kbuild bumps at
every relink) and by the GNU build-id note the linker writes into vmlinux (a
digest of its contents). The booted kernel is identified by the banner line
of the console and, once user space runs, by the build-id the guest reads
from ``/sys/kernel/notes`` (the running kernel's own notes section). The boot
stage compares the two (vm_target.untrusted, target.judge_run): a kernel that is not the one
built is an error of the run, never a verdict on the tests.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

BANNER_PREFIX = "Linux version "
# The guest prints this line, then its identity, before the command runs.
IDENTITY_MARKER = "ISOLHARNESS-KERNEL"
NT_GNU_BUILD_ID = 3
_CONSOLE_BANNER = re.compile(r"(?:^|\]\s)(Linux version \S+ .*)$")


@dataclass(frozen=True)
class KernelIdentity:
    release: str = ""       # uname -r
    version: str = ""       # uname -v: "#N SMP PREEMPT_DYNAMIC ...", N the build number
    build_id: str = ""      # hex of the GNU build-id note, "" when unknown

    @property
    def build_number(self) -> str:
        m = re.match(r"#(\S+)", self.version)
        return m.group(1) if m else ""

    def describe(self) -> str:
        parts = [p for p in (self.release, self.version) if p]
        if self.build_id:
            parts.append(f"build-id {self.build_id}")
        return " ".join(parts) or "unknown"

    def properties(self, prefix: str = "kernel") -> dict[str, str]:
        return {k: v for k, v in ((f"{prefix}_release", self.release), (f"{prefix}_version", self.version),
                                  (f"{prefix}_build_id", self.build_id)) if v}


def parse_banner(banner: str) -> KernelIdentity:
    """``Linux version 6.12.117+ (user@host) (gcc ...) #3 SMP ...`` -> release
    and version. The compiler part holds parentheses of its own, so the
    version is what follows the last ") #"."""
    banner = banner.strip()
    if not banner.startswith(BANNER_PREFIX):
        return KernelIdentity()
    release = banner[len(BANNER_PREFIX):].split(" ", 1)[0]
    cut = banner.rfind(") #")
    version = banner[cut + 2:] if cut >= 0 else ""
    return KernelIdentity(release, version)


def notes_build_id(notes: bytes, little: bool = True) -> str:
    """The GNU build-id in a run of ELF notes (a PT_NOTE segment, a .notes
    section, /sys/kernel/notes), or ""."""
    fmt = "<III" if little else ">III"
    off = 0
    while off + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from(fmt, notes, off)
        off += 12
        name = notes[off:off + namesz]
        off += (namesz + 3) & ~3
        desc = notes[off:off + descsz]
        off += (descsz + 3) & ~3
        if ntype == NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU":
            return desc.hex()
    return ""


def _sections(data: bytes) -> tuple[str, list[tuple[int, int, int, int, int]]]:
    """Byte order and (type, addr, offset, size, link) of each section of an
    ELF64 file."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not an ELF64 file")
    e = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(e + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(e + "HH", data, 0x3A)
    out = []
    for i in range(shnum):
        base = shoff + i * shentsize
        sh_type, = struct.unpack_from(e + "I", data, base + 4)
        addr, offset, size = struct.unpack_from(e + "QQQ", data, base + 0x10)
        link, = struct.unpack_from(e + "I", data, base + 0x28)
        out.append((sh_type, addr, offset, size, link))
    return e, out


SHT_SYMTAB, SHT_NOTE = 2, 7


def _elf_notes(data: bytes) -> bytes:
    """Concatenated contents of every SHT_NOTE section of an ELF64 file."""
    _, sections = _sections(data)
    return b"".join(data[off:off + size] for kind, _, off, size, _ in sections if kind == SHT_NOTE)


def _symbol_bytes(data: bytes, name: bytes) -> bytes | None:
    """The contents of a defined data symbol, from the symbol table."""
    e, sections = _sections(data)
    for kind, _, off, size, link in sections:
        if kind != SHT_SYMTAB:
            continue
        strtab = sections[link]
        strings = data[strtab[2]:strtab[2] + strtab[3]]
        for st_name, _, _, shndx, value, st_size in struct.iter_unpack(e + "IBBHQQ", data[off:off + size]):
            if st_size and 0 < shndx < len(sections) and strings.startswith(name + b"\0", st_name):
                _, sec_addr, sec_off, _, _ = sections[shndx]
                start = sec_off + value - sec_addr
                return data[start:start + st_size]
    return None


def vmlinux_identity(vmlinux: Path, release: str) -> tuple[KernelIdentity, str]:
    """Identity of a built vmlinux and its exact banner (the linux_banner
    symbol, without its newline). init/version.o carries a provisional
    banner without the build number, so the symbol table is asked first.
    Raises OSError or ValueError when the file cannot be read as a kernel."""
    data = vmlinux.read_bytes()
    build_id = notes_build_id(_elf_notes(data), little=data[5] == 1)
    raw = _symbol_bytes(data, b"linux_banner")
    if raw is None:  # a stripped vmlinux: the banner that has a build number
        needle = f"{BANNER_PREFIX}{release} (".encode()
        found = []
        start = data.find(needle)
        while start >= 0:
            end = data.find(b"\n", start, start + 1024)
            found.append(data[start:end if end > 0 else start + 256])
            start = data.find(needle, start + 1)
        numbered = [b for b in found if parse_banner(b.decode(errors="replace")).build_number]
        if not (numbered or found):
            raise ValueError(f"no '{BANNER_PREFIX}{release}' banner in {vmlinux}")
        raw = (numbered or found)[0]
    banner = raw.split(b"\0", 1)[0].decode(errors="replace").rstrip("\n")
    ident = parse_banner(banner)
    if ident.release != release:
        raise ValueError(f"the banner of {vmlinux} names release {ident.release!r}, not {release!r}")
    return KernelIdentity(ident.release, ident.version, build_id), banner


def console_banners(console: str) -> list[str]:
    """Every ``Linux version ...`` banner the console shows, timestamps cut."""
    found = []
    for line in console.splitlines():
        m = _CONSOLE_BANNER.search(line.rstrip("\r"))
        if m:
            found.append(m.group(1).rstrip())
    return found


# Shell run first in the guest (or on a target): one line with what the
# running kernel says of itself. od and tr are coreutils, everywhere.
IDENTITY_COMMAND = (f"printf '{IDENTITY_MARKER} %s|%s|%s\\n' \"$(uname -r)\" \"$(uname -v)\" "
                    "\"$(od -An -v -tx1 /sys/kernel/notes 2>/dev/null | tr -d ' \\n')\"")


def parse_identity_line(output: str) -> KernelIdentity | None:
    """The identity the guest printed with IDENTITY_COMMAND, or None."""
    for line in output.splitlines():
        if line.startswith(IDENTITY_MARKER + " "):
            fields = line[len(IDENTITY_MARKER) + 1:].rstrip("\r").split("|")
            if len(fields) != 3:
                return None
            release, version, notes_hex = fields
            try:
                build_id = notes_build_id(bytes.fromhex(notes_hex)) if notes_hex else ""
            except ValueError:
                build_id = ""
            return KernelIdentity(release, version, build_id)
    return None
