"""Stage 3 (config): merge the fragments of kconfigs/ into a .config and
check that Kconfig kept every requested option.

The merge is the kernel's own: ``make tinyconfig``, then
``scripts/kconfig/merge_config.sh -m`` with our fragments, then
``make olddefconfig``. olddefconfig silently drops options whose
dependencies are unmet, so the final .config is checked against every
request. When the result equals the previous .config, the previous file is
put back untouched so the next build stays incremental.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import children
from .errors import ENVIRONMENT_HINT, EnvironmentFault, KconfigError, environment_fault

ARCH = "x86_64"
BASE_TARGET = "tinyconfig"

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class Fragment:
    path: Path
    options: dict[str, str]  # CONFIG_FOO -> "y" / "n" / "64" / '"str"'


@dataclass(frozen=True)
class Dropped:
    option: str
    wanted: str
    got: str          # "n" when absent
    exists: bool      # whether any Kconfig file defines the symbol


@dataclass(frozen=True)
class KernelConfig:
    build_dir: Path
    config_path: Path
    config_hash: str            # sha256 of the final .config
    fragments: tuple[Path, ...]
    changed: bool               # False when the previous .config was kept


def parse_config_text(text: str, origin: str = "<text>") -> dict[str, str]:
    """Parse .config / fragment syntax. Unset options map to "n"."""
    opts: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _SET.match(line)
        if m:
            opts[m.group(1)] = m.group(2)
            continue
        m = _UNSET.match(line)
        if m:
            opts[m.group(1)] = "n"
            continue
        if line.startswith("#"):
            continue
        raise KconfigError(
            f"{origin}:{lineno}: cannot parse '{raw}'",
            hint="fragment lines are CONFIG_FOO=value or '# CONFIG_FOO is not set'",
        )
    return opts


def load_fragment(path: Path) -> Fragment:
    if not path.is_file():
        raise KconfigError(f"config fragment {path} does not exist")
    return Fragment(path=path.resolve(), options=parse_config_text(path.read_text(), str(path)))


def requested_options(fragments: list[Fragment]) -> dict[str, str]:
    """Later fragments override earlier ones, as merge_config.sh does."""
    merged: dict[str, str] = {}
    for frag in fragments:
        merged.update(frag.options)
    return merged


def find_dropped(requested: dict[str, str], final: dict[str, str], defined: set[str] | None = None) -> list[Dropped]:
    dropped = []
    for opt, want in requested.items():
        got = final.get(opt, "n")
        if got != want:
            exists = defined is None or opt.removeprefix("CONFIG_") in defined
            dropped.append(Dropped(opt, want, got, exists))
    return dropped


def format_dropped(dropped: list[Dropped]) -> str:
    lines = []
    for d in dropped:
        why = "unmet dependencies" if d.exists else "no such option in this kernel"
        lines.append(f"  {d.option}: requested {d.wanted}, got {d.got} ({why})")
    return "\n".join(lines)


def kconfig_symbols(srctree: Path) -> set[str]:
    """Every symbol a Kconfig file of the tree defines (config/menuconfig FOO)."""
    symbols: set[str] = set()
    pat = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)")
    for dirpath, dirnames, filenames in os.walk(srctree):
        dirnames[:] = [d for d in dirnames if d not in (".git",)]
        for name in filenames:
            if name.startswith("Kconfig"):
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    for line in f:
                        m = pat.match(line)
                        if m:
                            symbols.add(m.group(1))
    return symbols


def _environment(output: str, what: str) -> None:
    """Raise the environment's failure (no space, quota, read-only) a
    Kconfig step's output reports: never a fault of the fragments."""
    fault = environment_fault(output)
    if fault:
        raise EnvironmentFault(f"{what} failed: {fault}", hint=ENVIRONMENT_HINT, detail=output.strip()[-2000:])


def _make(srctree: Path, build_dir: Path, *targets: str) -> None:
    res = children.run(
        ["make", "-s", "-C", str(srctree), f"O={build_dir}", f"ARCH={ARCH}", *targets],
        capture_output=True,
        text=True,
        errors="replace",
    )
    if res.returncode != 0:
        _environment(res.stderr + res.stdout, f"make {' '.join(targets)}")
        raise KconfigError(
            f"make {' '.join(targets)} failed",
            detail=(res.stderr or res.stdout).strip()[-3000:],
            hint="check that flex, bison and a host compiler are installed (isolharness doctor)",
        )


STAMP = ".isolharness-config-stamp"


def root_mount_problem(final: dict[str, str], do_mounts_c: str) -> str | None:
    """Why a kernel with this .config cannot mount virtme-ng's 9p root, or None.

    Without CONFIG_BLOCK the kernel mounts a root that has no device only
    through mount_nodev_root() (Linux 6.4 and later); an older tree built
    without the block layer would panic at boot looking for its init.
    """
    if final.get("CONFIG_BLOCK", "n") == "y" or "mount_nodev_root" in do_mounts_c:
        return None
    return ("CONFIG_BLOCK is off and this tree's init/do_mounts.c has no mount_nodev_root() "
            "(Linux 6.4 and later), so the kernel could not mount virtme-ng's 9p root")


def config_stamp(tree_commit: str, fragments: list[Fragment]) -> str:
    """Everything the merged .config depends on: the tree's commit (its
    Kconfig files) and the fragments' contents."""
    h = hashlib.sha256(f"{BASE_TARGET} {ARCH} {tree_commit}\n".encode())
    for frag in fragments:
        h.update(frag.path.read_bytes())
    return h.hexdigest()


def configure(srctree: Path, build_dir: Path, fragment_paths: list[Path], tree_commit: str = "") -> KernelConfig:
    """Produce build_dir/.config from tinyconfig plus the fragments.

    When ``tree_commit`` is given and neither it, the fragments nor the
    .config changed since the last successful run, Kconfig is not run again.
    """
    fragments = [load_fragment(p) for p in fragment_paths]
    build_dir.mkdir(parents=True, exist_ok=True)
    config = build_dir / ".config"
    stamp_file = build_dir / STAMP
    stamp = config_stamp(tree_commit, fragments) if tree_commit else ""
    if stamp and config.exists() and stamp_file.exists():
        recorded = stamp_file.read_text().split()
        digest = hashlib.sha256(config.read_bytes()).hexdigest()
        if recorded == [stamp, digest]:
            return KernelConfig(build_dir, config, digest, tuple(f.path for f in fragments), False)
    backup = build_dir / ".config.isolharness-prev"
    had_config = config.exists()
    if had_config:
        shutil.copy2(config, backup)
    try:
        _make(srctree, build_dir, BASE_TARGET)
        res = children.run(
            [str(srctree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build_dir), str(config),
             *[str(f.path) for f in fragments]],
            cwd=build_dir,
            capture_output=True,
            text=True,
            errors="replace",
        )
        if res.returncode != 0:
            _environment(res.stderr + res.stdout, "merge_config.sh")
            raise KconfigError("merge_config.sh failed", detail=(res.stderr or res.stdout)[-3000:])
        _make(srctree, build_dir, "olddefconfig")
        final = parse_config_text(config.read_text(), str(config))
        requested = requested_options(fragments)
        dropped = find_dropped(requested, final)
        if dropped:
            dropped = find_dropped(requested, final, kconfig_symbols(srctree))
            raise KconfigError(
                f"Kconfig dropped {len(dropped)} requested option(s)",
                detail=format_dropped(dropped),
                hint="fix the fragment(s): " + ", ".join(str(f.path) for f in fragments),
            )
        do_mounts = srctree / "init" / "do_mounts.c"
        problem = root_mount_problem(final, do_mounts.read_text(errors="replace") if do_mounts.exists() else "")
        if problem:
            raise KconfigError(
                "the configured kernel cannot boot in virtme-ng",
                detail=problem,
                hint="add the block fragment: --kconfig base --kconfig isolation --kconfig block",
            )
    except BaseException:
        # Put the previous .config back: a failed or interrupted config stage
        # must not cost the next run an incremental build.
        if had_config:
            os.replace(backup, config)
        raise
    changed = True
    if had_config:
        if backup.read_bytes() == config.read_bytes():
            os.replace(backup, config)  # same content, keep the old mtime
            changed = False
        else:
            backup.unlink()
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    if stamp:
        stamp_file.write_text(f"{stamp} {digest}\n")
    return KernelConfig(build_dir, config, digest, tuple(f.path for f in fragments), changed)
