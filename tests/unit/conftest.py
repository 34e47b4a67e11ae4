"""Fixtures of the unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import kunit
from harness.source import DEFAULT_TARBALL

PARSER_FILES = ("kunit_parser.py", "kunit_printer.py")


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    """A tree holding the kernel's KTAP parser: the harness's cache's, or
    the two files taken from the linux-source tarball."""
    from harness.cache import cache_dir

    for src in sorted(cache_dir().glob("work/*/src")):
        if (src / kunit.PARSER).is_file():
            return src
    if not DEFAULT_TARBALL.is_file():
        pytest.skip(f"no kernel tree in the cache and no {DEFAULT_TARBALL} (make deps installs it)")
    out = tmp_path_factory.mktemp("ktree")
    top = DEFAULT_TARBALL.name.removesuffix(".tar.xz")
    subprocess.run(["tar", "-xJf", str(DEFAULT_TARBALL), "-C", str(out), "--strip-components=1",
                    *[f"{top}/tools/testing/kunit/{f}" for f in PARSER_FILES]], check=True)
    return out
