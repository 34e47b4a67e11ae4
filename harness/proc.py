"""Running external commands with readable failures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from . import children
from .errors import EnvironmentFault, HarnessError, environment_fault


def require_tool(name: str, package: str) -> str:
    """Return the path of ``name`` or fail naming the package to install."""
    path = shutil.which(name)
    if path is None:
        raise EnvironmentFault(
            f"required tool '{name}' is not installed",
            hint=f"install it with: apt-get install {package}  (or run 'isolharness doctor')",
        )
    return path


def run(
    argv: Sequence[str | os.PathLike[str]],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    hint: str = "",
    input_text: str | None = None,
) -> str:
    """Run a command, return its stdout; on failure raise HarnessError with its stderr."""
    args = [str(a) for a in argv]
    # The C locale: the output is read for English messages ("No space
    # left on device").
    full_env = dict(os.environ, LC_ALL="C")
    full_env.update(env or {})
    try:
        res = children.run(
            args,
            cwd=cwd,
            env=full_env,
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise EnvironmentFault(f"cannot run '{args[0]}': {exc.strerror}", hint=hint) from exc
    if res.returncode != 0:
        fault = environment_fault(res.stderr + res.stdout)
        raise (EnvironmentFault if fault else HarnessError)(
            f"{what or ' '.join(args)} failed (exit {res.returncode})" + (f": {fault}" if fault else ""),
            hint=hint,
            detail=(res.stderr or res.stdout).strip()[-4000:],
        )
    return res.stdout
