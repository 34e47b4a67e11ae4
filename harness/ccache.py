"""The compiler cache of a build: its settings, a remote storage shared by
several machines, and what the build got from each.

A remote storage is given in ccache's own syntax (``remote_storage``: one
or more URLs separated by spaces, ``redis://``, ``redis+unix:``, ``http://``
or ``file:``, each with optional ``|attribute=value`` parts), with
``--ccache-remote`` or ``$ISOLHARNESS_CCACHE_REMOTE``. It is probed once
before the build: one that does not answer within PROBE_TIMEOUT is left out
of the build and reported, instead of costing every compiler call a
connection timeout. What each compiler call got is read from ccache's stats
log of that build alone (concurrent builds share the cache directory, so its
global counters say nothing about one build).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import HarnessError

REMOTE_ENV = "ISOLHARNESS_CCACHE_REMOTE"
PROBE_TIMEOUT = 1.0
_DEFAULT_PORTS = {"redis": 6379, "http": 80}
STATS_LOG = "ccache-stats.log"


@dataclass(frozen=True)
class Remote:
    """The remote storage asked for, and what the probe found."""

    url: str            # as given, passed to ccache when usable
    usable: str         # the URLs that answered (ccache's syntax), "" for none
    problems: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        return " ".join(mask_password(u) for u in self.url.split())

    def describe(self) -> str:
        if not self.problems:
            return self.shown
        return f"{self.shown} ({'; '.join(self.problems)})"


def mask_password(url: str) -> str:
    """The URL with the password of its user part (if any) replaced."""
    return re.sub(r"^([a-z+]+://[^/@:|]*):[^/@|]*@", r"\1:***@", url)


def remote_setting(flag: str | None) -> str:
    """The flag, then $ISOLHARNESS_CCACHE_REMOTE; "" when neither is set."""
    value = flag if flag is not None else os.environ.get(REMOTE_ENV, "")
    return value.strip()


_FORMS = ("use redis://HOST[:PORT], redis+unix:/PATH, http://HOST[:PORT]/PATH or file:/PATH "
          f"(--ccache-remote or ${REMOTE_ENV})")


def _endpoint(url: str) -> tuple[str, int] | str:
    """(host, port) to connect to, a path for unix sockets and file storage;
    a HarnessError for what ccache would not take."""
    base = url.split("|", 1)[0]
    scheme = base.split(":", 1)[0]
    if scheme in ("redis", "http"):
        parts = urlsplit(base)
        if not parts.hostname:
            raise HarnessError(f"remote ccache URL {mask_password(url)!r} names no host",
                               hint=_FORMS)
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise HarnessError(f"remote ccache URL {mask_password(url)!r} has a bad port", hint=_FORMS) from None
        return parts.hostname, port
    if scheme in ("redis+unix", "file"):
        path = urlsplit(base).path
        if not path:
            raise HarnessError(f"remote ccache URL {mask_password(url)!r} names no path", hint=_FORMS)
        return path
    raise HarnessError(f"remote ccache URL {mask_password(url)!r}: ccache knows no storage {scheme!r}",
                       hint=_FORMS)


def _answers(where: tuple[str, int] | str, url: str) -> str:
    """"" when the storage answers, else why not."""
    if isinstance(where, tuple):
        try:
            with socket.create_connection(where, timeout=PROBE_TIMEOUT):
                return ""
        except OSError as exc:
            why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            return f"{mask_password(url)} unreachable: {why.lower()}"
    if url.startswith("redis+unix"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(PROBE_TIMEOUT)
        try:
            sock.connect(where)
            return ""
        except OSError as exc:
            return f"{url} unreachable: {(exc.strerror or str(exc)).lower()}"
        finally:
            sock.close()
    path = Path(where)
    if path.is_dir() and os.access(path, os.W_OK):
        return ""
    return f"{url} is not a writable directory"


def check_remote_setting(setting: str) -> None:
    """Raise the HarnessError of a URL ccache would not take."""
    for url in setting.split():
        _endpoint(url)


def probe_remote(setting: str) -> Remote | None:
    """None when no remote storage is asked for. A malformed URL is an
    error of the run's input; one that does not answer is only left out."""
    if not setting:
        return None
    usable, problems = [], []
    for url in setting.split():
        why = _answers(_endpoint(url), url)
        if why:
            problems.append(why)
        else:
            usable.append(url)
    return Remote(setting, " ".join(usable), tuple(problems))


def ccache_env(cache: Path, remote: Remote | None = None, stats_log: Path | None = None) -> dict[str, str]:
    env = {
        "CCACHE_DIR": str(cache / "ccache"),
        # Paths under the cache are hashed relative to the build directory;
        # with the cache's layout (harness/cache.py) they are the same for
        # every tree and every machine, so all of them share hits.
        "CCACHE_BASEDIR": str(cache),
        "CCACHE_NOHASHDIR": "1",
        # Depend mode: a miss compiles once instead of preprocessing first,
        # which matters for cold builds; hits come from the -MMD dependency
        # files Kbuild already asks gcc for.
        "CCACHE_DEPEND": "1",
        "CCACHE_MAXSIZE": os.environ.get("CCACHE_MAXSIZE", "5G"),
        # The harness decides which remote storage a build uses (below);
        # one from the user's environment or ccache.conf is not silently added.
        "CCACHE_REMOTE_STORAGE": remote.usable if remote else "",
        # Stable build stamps: identical inputs give identical objects.
        "KBUILD_BUILD_TIMESTAMP": "isolharness",
        "KBUILD_BUILD_USER": "isolharness",
        "KBUILD_BUILD_HOST": "isolharness",
    }
    if stats_log is not None:
        env["CCACHE_STATSLOG"] = str(stats_log)
    return env


@dataclass(frozen=True)
class CcacheStats:
    """What the compiler calls of one build got from the caches."""

    local_hits: int = 0
    remote_hits: int = 0
    misses: int = 0
    uncached: int = 0        # calls ccache did not cache (links, preprocessing, ...)
    remote_errors: int = 0   # calls for which the remote storage failed

    @property
    def cacheable(self) -> int:
        return self.local_hits + self.remote_hits + self.misses

    def describe(self) -> str:
        text = (f"{self.local_hits} local hits, {self.remote_hits} remote hits, "
                f"{self.misses} misses of {self.cacheable} cacheable compiles")
        if self.remote_errors:
            text += f", {self.remote_errors} remote storage errors"
        return text

    def properties(self) -> dict[str, str]:
        return {"ccache_local_hits": str(self.local_hits), "ccache_remote_hits": str(self.remote_hits),
                "ccache_misses": str(self.misses), "ccache_remote_errors": str(self.remote_errors)}

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> CcacheStats | None:
        """The counts a saved run's properties hold (None: make did not run)."""
        if "ccache_misses" not in props:
            return None
        return cls(int(props.get("ccache_local_hits", 0)), int(props.get("ccache_remote_hits", 0)),
                   int(props["ccache_misses"]), remote_errors=int(props.get("ccache_remote_errors", 0)))


def read_stats(log: Path) -> CcacheStats:
    """Parse a ccache stats log: a ``# source`` line per call, then the
    counters that call moved, one per line."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return CcacheStats()
    calls: list[set[str]] = []
    for line in lines:
        if line.startswith("# "):
            calls.append(set())
        elif line.strip() and calls:
            calls[-1].add(line.strip())
    local = sum("local_storage_hit" in c for c in calls)
    remote = sum("remote_storage_hit" in c and "local_storage_hit" not in c for c in calls)
    misses = sum("cache_miss" in c for c in calls)
    return CcacheStats(local, remote, misses, len(calls) - local - remote - misses,
                       sum("remote_storage_error" in c for c in calls))
