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
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@functools.cache
def options() -> dict[str, str] | None:
    """Every option the config names: its value (=y, =m, =123, ...), or "n"
    for "# CONFIG_FOO is not set"; None when no config of this kernel can
    be found. An option the tree's Kconfig does not define is absent."""
    named = os.environ.get("ISOLHARNESS_KCONFIG")
    candidates = [Path(named)] if named else [Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}")]
    for path in candidates:
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode(errors="replace")
        found: dict[str, str] = {}
        for line in text.splitlines():
            m = _SET.match(line)
            if m:
                found[m.group(1)] = m.group(2)
            m = _UNSET.match(line)
            if m:
                found[m.group(1)] = "n"
        return found
    return None


def configured_out(option: str) -> bool:
    """True only when the kernel's config says ``option`` is not set: the
    tree defines it and the build turned it off. An option the tree lacks
    (a kernel without the series) or an unknown config never makes a
    feature's absence acceptable."""
    opts = options()
    return opts is not None and opts.get(option) == "n"
