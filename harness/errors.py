"""Errors that stop a run, each carrying what the user should do about it."""

from __future__ import annotations


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


class SeriesApplyError(HarnessError):
    """A patch of a series does not apply to the base tree."""

    status = "failed"


class KconfigError(HarnessError):
    """Kconfig dropped or could not honour requested options."""


class BuildError(HarnessError):
    """The kernel did not compile."""

    status = "failed"
