"""Patch series: a directory with a quilt-style ``series`` file and git
format-patch files, parsed here and applied by :mod:`harness.apply`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError

SERIES_FILE = "series"
DEFAULT_LIST = "DEFAULT"  # patches/DEFAULT names the series `check` applies by default


@dataclass(frozen=True)
class Patch:
    name: str
    path: Path


@dataclass(frozen=True)
class Series:
    name: str
    directory: Path
    patches: tuple[Patch, ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.patches:
            h.update(p.name.encode() + b"\0")
            h.update(p.path.read_bytes())
        return h.hexdigest()


def parse_series_text(text: str, origin: str) -> list[str]:
    """Patch file names from a quilt series file.

    Blank lines and '#' comments are skipped; quilt's ``-p1`` option is
    accepted (git am applies with -p1), any other option is refused.
    """
    names = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) > 1 and fields[1:] != ["-p1"]:
            raise HarnessError(
                f"{origin}:{lineno}: unsupported options {' '.join(fields[1:])!r} for {fields[0]}",
                hint="patches are applied with git am (-p1); regenerate them with git format-patch",
            )
        names.append(fields[0])
    return names


def load_series(directory: Path) -> Series:
    directory = directory.resolve()
    series_file = directory / SERIES_FILE
    if not directory.is_dir():
        raise HarnessError(f"series directory {directory} does not exist")
    if not series_file.is_file():
        raise HarnessError(
            f"{directory} has no '{SERIES_FILE}' file",
            hint="list the patch files in order, one per line, in a file named 'series'",
        )
    names = parse_series_text(series_file.read_text(), str(series_file))
    if not names:
        raise HarnessError(f"{series_file} lists no patches")
    patches = []
    for name in names:
        path = directory / name
        if not path.is_file():
            raise HarnessError(
                f"{series_file} names '{name}', which does not exist in {directory}",
                hint="fix the series file or add the missing patch",
            )
        patches.append(Patch(name=name, path=path))
    return Series(name=directory.name, directory=directory, patches=tuple(patches))


def resolve_series(patches_dir: Path, selection: list[str] | None, cache: Path | None = None) -> list[Series]:
    """Turn --series arguments into Series, in order.

    ``None`` means the defaults listed in patches/DEFAULT; ``["none"]`` means
    the bare base kernel. An argument is a series name under patches/, a
    series directory, or an mbox file (split into the cache).
    """
    if selection is None:
        default_file = patches_dir / DEFAULT_LIST
        selection = parse_series_text(default_file.read_text(), str(default_file)) if default_file.is_file() else []
    if selection == ["none"]:
        return []
    result = []
    for item in selection:
        candidate = Path(item)
        if candidate.is_file() and cache is not None:
            from .mbox import series_from_mbox  # mbox builds on this module

            result.append(series_from_mbox(candidate, cache))
            continue
        if not candidate.is_dir():
            candidate = patches_dir / item
        if not candidate.is_dir():
            known = sorted(p.name for p in patches_dir.iterdir() if (p / SERIES_FILE).is_file()) if patches_dir.is_dir() else []
            raise HarnessError(
                f"unknown series '{item}'",
                hint=f"known series: {', '.join(known) or '(none)'}; or pass a directory, an mbox file, or 'none'",
            )
        result.append(load_series(candidate))
    return result


def series_set_key(series: list[Series]) -> str:
    """Name of the series combination, used for worktree and build dir names."""
    return "+".join(s.name for s in series) or "none"


def series_set_digest(series: list[Series]) -> str:
    h = hashlib.sha256()
    for s in series:
        h.update(s.name.encode() + b"\0" + s.digest.encode())
    return h.hexdigest()
