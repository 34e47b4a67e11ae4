"""Errors that stop a run, each carrying what the user should do about it."""

from __future__ import annotations

import errno


class HarnessError(Exception):
    """The harness or its environment failed (exit status 2).

    ``hint`` tells the user what to do; ``detail`` carries the tool's own
    explanation (git's, make's) verbatim. ``status`` is the stage outcome it
    stands for (see harness.outcome): "error" when the harness or its
    environment failed, "failed" when the code under test did.
    """

    status = "error"

    def __init__(self, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def render(self) -> str:
        parts = [f"error: {self.message}"]
        if self.detail:
            parts.append(self.detail.rstrip())
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class EnvironmentFault(HarnessError):
    """The environment failed (no space, a missing tool, QEMU, the network):
    nothing is known of the code under test (KernelCI's MISS, exit 2)."""

    status = "missed"


class SeriesApplyError(HarnessError):
    """A patch of a series does not apply to the base tree."""

    status = "failed"


class KconfigError(HarnessError):
    """Kconfig dropped or could not honour requested options."""


class BuildError(HarnessError):
    """The kernel did not compile."""

    status = "failed"


# The environment's faults, whoever meets them (make, gcc, git, tar, our own
# writes): never the code under test's.
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
                      errno.EROFS: "the file system is read-only"}
ENVIRONMENT_TEXTS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                     "Read-only file system": errno.EROFS}
ENVIRONMENT_HINT = ("free space (or point ISOLHARNESS_CACHE / --cache and --results at a writable file system "
                    "with room), then run again; the cache stays usable")


def environment_fault(text: str) -> str:
    """What environment failure a tool's output reports, or ""."""
    for needle, code in ENVIRONMENT_TEXTS.items():
        if needle in text:
            return ENVIRONMENT_ERRNOS[code]
    return ""


def as_harness_error(exc: BaseException) -> HarnessError:
    """Any exception as the HarnessError the top-level handler reports (exit
    2): an environment failure says which; anything else is the harness's
    own bug, reported with its traceback."""
    if isinstance(exc, HarnessError):
        return exc
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return EnvironmentFault(f"{ENVIRONMENT_ERRNOS[exc.errno]}{where}", hint=ENVIRONMENT_HINT)
    import traceback

    return HarnessError(f"internal error of isolharness: {type(exc).__name__}: {exc}",
                        detail="".join(traceback.format_exception(exc)).rstrip(),
                        hint="this is a bug of the harness, not of the kernel; the traceback above says where")
