"""A series posted as an mbox (``git format-patch --stdout``, b4 am, a
mailing-list archive) turned into the :class:`~harness.series.Series` that
:mod:`harness.apply` takes: one file per patch, in the order the subjects
number them, the cover letter set aside."""

from __future__ import annotations

import hashlib
import mailbox
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from pathlib import Path

from .errors import HarnessError
from .series import SERIES_FILE, Patch, Series

FROM_LINE = b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
NUMBER = re.compile(r"\[[^\]]*?\b(\d+)/(\d+)\s*\]")
DIFF = re.compile(rb"^(diff --git |--- \S|Index: )", re.MULTILINE)


@dataclass(frozen=True)
class Message:
    subject: str
    number: int | None      # i of [PATCH i/n], None when unnumbered
    total: int | None       # n of [PATCH i/n]
    has_diff: bool
    raw: bytes              # the message as git am reads it, From_ line included


def _subject(msg: mailbox.mboxMessage) -> str:
    raw = msg.get("Subject", "")
    try:
        text = str(make_header(decode_header(raw)))
    except (UnicodeDecodeError, LookupError):
        text = raw
    return " ".join(text.split())


def read_messages(path: Path) -> list[Message]:
    """Every message of the mbox, in file order."""
    if not path.is_file():
        raise HarnessError(f"{path}: no such mbox file")
    data = path.read_bytes()
    if not data.strip():
        raise HarnessError(f"{path}: empty file, not a series")
    if not data.startswith(b"From "):
        raise HarnessError(f"{path}: not an mbox (the first line is not a 'From ' separator)",
                           hint="write the series with `git format-patch --stdout` or `b4 am`")
    messages = []
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.keys():
            msg = box.get_message(key)
            body = box.get_bytes(key, from_=False)
            subject = _subject(msg)
            m = NUMBER.search(subject)
            messages.append(Message(
                subject=subject,
                number=int(m.group(1)) if m else None,
                total=int(m.group(2)) if m else None,
                has_diff=bool(DIFF.search(body)),
                raw=FROM_LINE + body if not body.startswith(b"From ") else body,
            ))
    finally:
        box.close()
    return messages


def patches_in_order(messages: list[Message], origin: str) -> list[Message]:
    """The messages that carry a diff, ordered by their [PATCH i/n] numbers.

    The cover letter (0/n, or any message without a diff) is left out. A
    numbered series must be complete and consistent; an unnumbered one keeps
    file order.
    """
    patches = [m for m in messages if m.has_diff]
    if not patches:
        what = "only a cover letter" if messages else "no message"
        raise HarnessError(f"{origin}: empty series: the mbox holds {what} and no patch (no diff found)")
    numbered = [m for m in patches if m.number is not None]
    if not numbered:
        return patches
    if len(numbered) != len(patches):
        odd = next(m.subject for m in patches if m.number is None)
        raise HarnessError(f"{origin}: numbered and unnumbered patches mixed; unnumbered: {odd!r}")
    totals = {m.total for m in numbered}
    if len(totals) != 1:
        raise HarnessError(f"{origin}: patches disagree on the series length: "
                           + ", ".join(f"{m.number}/{m.total}" for m in numbered))
    total = totals.pop()
    by_number: dict[int, Message] = {}
    for m in numbered:
        if m.number in by_number:
            raise HarnessError(f"{origin}: two patches numbered {m.number}/{total}: "
                               f"{by_number[m.number].subject!r} and {m.subject!r}")
        by_number[m.number] = m
    missing = [i for i in range(1, total + 1) if i not in by_number]
    if missing:
        raise HarnessError(f"{origin}: patch {', '.join(f'{i}/{total}' for i in missing)} missing from the mbox",
                           hint="fetch the whole thread (b4 am MESSAGE-ID) or pass the patches as a directory")
    extra = sorted(n for n in by_number if not 1 <= n <= total)
    if extra:
        raise HarnessError(f"{origin}: patch numbered {extra[0]}/{total} is out of range")
    return [by_number[i] for i in range(1, total + 1)]


def _file_name(index: int, subject: str) -> str:
    title = re.sub(r"^\s*(\[[^\]]*\]\s*)*", "", subject)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:52] or "patch"
    return f"{index:04d}-{slug}.patch"


def series_from_mbox(path: Path, cache: Path) -> Series:
    """Split the mbox into ``$CACHE/mbox/<sha256>/`` (a quilt series
    directory) and return it as a Series named after the file."""
    path = path.resolve()
    patches = patches_in_order(read_messages(path), str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    directory = cache / "mbox" / digest[:16]
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for i, msg in enumerate(patches, 1):
        name = _file_name(i, msg.subject)
        target = directory / name
        if not target.exists() or target.read_bytes() != msg.raw:
            tmp = target.with_suffix(".partial")
            tmp.write_bytes(msg.raw)
            tmp.replace(target)
        names.append(name)
    (directory / SERIES_FILE).write_text("".join(f"{n}\n" for n in names))
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "mbox"
    return Series(name=name, directory=directory,
                  patches=tuple(Patch(n, directory / n) for n in names))
