#!/usr/bin/env python3
"""Benchmarks of the build-boot cycle on this machine (README's figures).

Measures, each in a fresh cache directory (nothing reused from ~/.cache):

1. cold `isolharness check`: empty cache, empty ccache, unpack, build, boot;
2. the same again with nothing changed;
3. again after touching one source file the series modifies;
4. a second tree with the same sources (a --ksrc clone of the first) in the
   same cache: its build stage, from the first tree's ccache hits;
5. a build from a remote storage alone: a Redis server on 127.0.0.1 filled
   from the second tree's hits (CCACHE_RESHARE), then a second, empty cache
   directory pointed at it: its build stage;
6. the config comparison: a cold `make bzImage` of the lean config the
   check used and one of virtme-ng's own `vng --kconfig` config, same tree,
   same make command, same ccache settings as the harness (depend mode),
   each with an empty ccache and an empty O= directory.

Writes bench/results.json and prints it. Takes 45 minutes or more on a
2-core machine; run it alone (`make bench`). `--lean-only` skips the vng
build and keeps the vng figure of the newest run that measured it, recording
that it did so (the speed-up is then not like for like in time).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(cmd: list[str], env: dict[str, str], cwd: Path = PROJECT) -> float:
    print("$", " ".join(cmd), flush=True)
    start = time.monotonic()
    res = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.monotonic() - start
    if res.returncode != 0:
        print(res.stdout[-4000:])
        raise SystemExit(f"benchmark step failed (exit {res.returncode}): {' '.join(cmd)}")
    return took


def stage_time(results: Path, stage: str) -> float:
    from junitparser import JUnitXml

    for suite in JUnitXml.fromfile(str(results / "junit.xml")):
        for case in suite:
            if case.name == stage:
                return float(case.time)
    return 0.0


def series_file_to_touch(tree: Path) -> Path:
    """A file the applied series modifies (kernel/sys.c when none)."""
    log = subprocess.run(["git", "-C", str(tree), "diff", "--name-only", "base", "HEAD", "--", "*.c"],
                         capture_output=True, text=True).stdout.split()
    return tree / (log[0] if log else "kernel/sys.c")


def machine() -> dict[str, str]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024 // 1024
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "memory": f"{mem} GiB",
            "os": Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "",
            "python": platform.python_version(),
            "qemu": subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]}


def save(results_file: Path, out: dict[str, object]) -> None:
    """Append this run to bench/results.json (the README quotes the runs)."""
    try:
        runs = json.loads(results_file.read_text()).get("runs", [])
    except (OSError, ValueError):
        runs = []
    out["date"] = time.strftime("%Y-%m-%d")
    results_file.write_text(json.dumps({"runs": [*runs, out]}, indent=2) + "\n")
    print(json.dumps(out, indent=2))


def main() -> None:
    # A SIGTERM unwinds like Ctrl-C: the running step is killed, the Redis
    # server stopped, the temporary directories removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(os.environ.get("ISOLHARNESS_BENCH_DIR") or tempfile.mkdtemp(prefix="isolharness-bench-"))
    cache = root / "cache"
    if cache.exists():
        shutil.rmtree(cache)
    env = dict(os.environ, ISOLHARNESS_CACHE=str(cache))
    res = root / "results"
    check = [str(BIN / "isolharness"), "check", "--results", str(res)]
    figures: dict[str, float] = {}

    figures["cold check"] = sh(check, env)
    figures["cold check: build stage"] = stage_time(res, "build")
    figures["no-change re-run"] = sh(check, env)
    tree = next((cache / "work").glob("*/src"))
    touched = series_file_to_touch(tree)
    os.utime(touched)
    figures[f"re-run after touching {touched.relative_to(tree)}"] = sh(check, env)
    figures.update(shared_builds(root, env, tree))

    results_file = PROJECT / "bench" / "results.json"
    lean_config = next((cache / "work").glob("*/build/*")) / ".config"
    lean = options_y(lean_config)
    figures["lean config cold build"] = cold_bzimage(tree, lean_config, root / "lean", env)
    if "--lean-only" in sys.argv:
        recorded = json.loads(results_file.read_text())
        # The newest run that measured the vng build itself.
        previous = next(r for r in reversed(recorded.get("runs", [recorded])) if "vng_figure_from" not in r)
        figures["vng --kconfig cold build"] = previous["seconds"]["vng --kconfig cold build"]
        options = previous["options_y"]["vng --kconfig"]
        vng_from = previous.get("vng_figure_from", f"the run of {previous.get('date', '?')}")
        vng_ccache = previous.get("ccache_mode", "default (preprocessor on miss)")
    else:
        # virtme-ng's own config: defconfig plus its fragment.
        vng_config = root / "vng-config"
        sh([str(BIN / "vng"), "--kconfig", f"O={vng_config}"], dict(env, PATH=f"{BIN}:{env['PATH']}"), cwd=tree)
        options = options_y(vng_config / ".config")
        figures["vng --kconfig cold build"] = cold_bzimage(tree, vng_config / ".config", root / "vng", env)
        vng_from = vng_ccache = ""
    out = {"machine": machine(), "seconds": figures, "options_y": {"lean": lean, "vng --kconfig": options},
           "speedup_cold_build": figures["vng --kconfig cold build"] / figures["lean config cold build"],
           "second_tree_build_share": figures["second tree: build stage"] / figures["cold check: build stage"],
           "remote_only_build_share": figures["remote hits only: build stage"] / figures["cold check: build stage"],
           "ccache_mode": "depend (CCACHE_DEPEND=1), empty cache for each cold build"}
    if vng_from:
        # The borrowed vng figure was measured with that run's ccache mode.
        out["vng_figure_from"] = vng_from
        out["vng_ccache_mode"] = vng_ccache
    save(results_file, out)
    shutil.rmtree(root, ignore_errors=True)


def shared_builds(root: Path, env: dict[str, str], tree: Path) -> dict[str, float]:
    """Rows 4 and 5: the build stage of a second tree in the same cache, and
    of an empty cache served by a remote storage."""
    figures: dict[str, float] = {}
    clone = root / "second-tree"
    subprocess.run(["git", "clone", "-q", "--shared", str(tree), str(clone)], check=True)
    # The clone carries the series as commits: the same config as the first
    # tree's needs the series' own fragment, which --series none leaves out.
    fragments = [arg for f in ("base", "isolation", str(PROJECT / "kconfigs" / "series" / "task-isolation.config"))
                 for arg in ("--kconfig", f)]
    second = [str(BIN / "isolharness"), "check", "--ksrc", str(clone), "--series", "none", *fragments,
              "--results", str(root / "results-second")]
    sh(second, env)
    figures["second tree: build stage"] = stage_time(root / "results-second", "build")
    sys.path.insert(0, str(PROJECT / "tests"))
    from servers import redis_server

    try:
        with redis_server(root / "redis") as url:
            # Fill the server: the second tree built again, its local hits shared.
            build_dir = next((Path(env["ISOLHARNESS_CACHE"]) / "work").glob("git-*/build"))
            shutil.rmtree(build_dir)
            sh([second[0], "build", *second[2:], "--ccache-remote", url], dict(env, CCACHE_RESHARE="1"))
            other = dict(env, ISOLHARNESS_CACHE=str(root / "cache-remote"), ISOLHARNESS_CCACHE_REMOTE=url)
            sh([str(BIN / "isolharness"), "check", "--results", str(root / "results-remote")], other)
            figures["remote hits only: build stage"] = stage_time(root / "results-remote", "build")
    finally:
        shutil.rmtree(root / "cache-remote", ignore_errors=True)
    return figures


def options_y(config: Path) -> int:
    return sum(1 for line in config.read_text().splitlines() if line.endswith("=y"))


def cold_bzimage(tree: Path, config: Path, root: Path, env: dict[str, str]) -> float:
    """Seconds for `make bzImage` of ``config`` from an empty O= directory
    with an empty ccache, with the harness's own ccache settings."""
    from harness.build import compiler
    from harness.ccache import ccache_env

    out = root / "build"
    shutil.rmtree(root, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy2(config, out / ".config")
    build_env = dict(env, **ccache_env(root))
    # olddefconfig only to write the generated files; the options are kept.
    sh(["make", "-s", "-C", str(tree), f"O={out}", "olddefconfig"], build_env)
    took = sh(["make", "-C", str(tree), f"O={out}", f"-j{os.cpu_count()}",
                f"CC={compiler(root)}", "bzImage"], build_env)
    shutil.rmtree(root, ignore_errors=True)
    return took


if __name__ == "__main__":
    main()
