"""The options the kernel under test was built with: the build's .config
the harness names (ISOLHARNESS_KCONFIG), else /proc/config.gz, else
/boot/config-<release> (a machine reached with `test --target`)."""

from __future__ import annotations

import functools
import gzip
import os
import re
from pathlib import Path

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")


@functools.cache
def options() -> dict[str, str] | None:
    """Every option set to a value (=y, =m, =123, ...); None when no config
    of this kernel can be found."""
    named = os.environ.get("ISOLHARNESS_KCONFIG")
    candidates = [Path(named)] if named else [Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}")]
    for path in candidates:
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode(errors="replace")
        return {m.group(1): m.group(2) for m in map(_SET.match, text.splitlines()) if m}
    return None


def configured_out(option: str) -> bool:
    """True only when the kernel's config is known and leaves ``option`` off;
    an unknown config never makes a feature's absence acceptable."""
    opts = options()
    return opts is not None and opts.get(option, "n") == "n"
