"""Results directories: the harness moves or deletes only what it made.

Every results directory the harness creates holds a marker file. A run
rotates its directory (``--results DIR``) to the sibling ``previous`` only
when DIR carries the marker, and replaces ``previous`` only when that one
carries it too; a directory the harness did not make is never moved or
deleted: the run refuses with the reason before doing anything. An empty
directory is taken over as it is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import HarnessError

MARKER = ".isolharness-results"
PREVIOUS = "previous"
_HINT = "pass --results a new or empty directory, or move that one away yourself"


def owned(path: Path) -> bool:
    return (path / MARKER).is_file()


def _claim(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by isolharness: a run may move this directory to 'previous' and "
                               "delete the previous 'previous'\n")


def rotate(results: Path) -> Path:
    """Make ``results`` an empty results directory of the harness's, the
    last run's moving to ``previous`` beside it. Returns ``results``."""
    if results.exists() and not results.is_dir():
        raise HarnessError(f"--results {results} exists and is not a directory", hint=_HINT)
    if not results.exists():
        _claim(results)
        return results
    if not owned(results):
        if any(results.iterdir()):
            raise HarnessError(f"--results {results} holds files isolharness did not write; refusing to move "
                               f"or delete them", hint=_HINT)
        _claim(results)
        return results
    previous = results.with_name(PREVIOUS)
    if previous == results:
        raise HarnessError(f"--results {results} is named '{PREVIOUS}', the name the last run moves to",
                           hint="pick another name")
    if previous.exists() or previous.is_symlink():
        if previous.is_symlink() or not previous.is_dir() or not owned(previous):
            raise HarnessError(f"{previous} was not made by isolharness, and the last run in {results} would "
                               f"move there; refusing to delete it", hint=_HINT)
        shutil.rmtree(previous)
    os.rename(results, previous)
    _claim(results)
    return results
