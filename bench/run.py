#!/usr/bin/env python3
"""Benchmarks of the build-boot cycle on this machine (README's figures).

Measures, each in a fresh cache directory (nothing reused from ~/.cache):

1. cold `isolharness check`: empty cache, empty ccache, unpack, build, boot;
2. the same again with nothing changed;
3. again after touching one source file the series modifies;
4. a cold build of virtme-ng's own `vng --kconfig` config, for comparison
   with the lean tinyconfig-based one (same tree, same ccache setup).

Writes bench/results.json and prints it. Takes 40 minutes or more on a
2-core machine; run it alone (`make bench`). `--lean-only` skips step 4 and
keeps the vng figure of the previous bench/results.json (it does not depend
on this project's config), recording that it did so.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
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
    tree = next((cache / "trees").iterdir())
    touched = series_file_to_touch(tree)
    os.utime(touched)
    figures[f"re-run after touching {touched.relative_to(tree)}"] = sh(check, env)

    results_file = PROJECT / "bench" / "results.json"
    lean = sum(1 for line in (next((cache / "build").glob("*/*")) / ".config").read_text().splitlines()
               if line.endswith("=y"))
    if "--lean-only" in sys.argv:
        recorded = json.loads(results_file.read_text())
        # The newest run that measured the vng build itself.
        previous = next(r for r in reversed(recorded.get("runs", [recorded])) if "vng_figure_from" not in r)
        figures["vng --kconfig cold build"] = previous["seconds"]["vng --kconfig cold build"]
        options = previous["options_y"]["vng --kconfig"]
        out = {"machine": machine(), "seconds": figures, "options_y": {"lean": lean, "vng --kconfig": options},
               "speedup_cold_build": figures["vng --kconfig cold build"] / figures["cold check: build stage"],
               "vng_figure_from": previous.get("vng_figure_from", "the previous full run of bench/run.py")}
        save(results_file, out)
        shutil.rmtree(root, ignore_errors=True)
        return

    # virtme-ng's own config: defconfig plus its fragment, built cold.
    vng_out = root / "vng-build"
    vng_env = dict(env, CCACHE_DIR=str(root / "ccache-vng"), CCACHE_BASEDIR=str(root))
    sh([str(BIN / "vng"), "--kconfig", f"O={vng_out}"], dict(vng_env, PATH=f"{BIN}:{env['PATH']}"), cwd=tree)
    options = sum(1 for line in (vng_out / ".config").read_text().splitlines() if line.endswith("=y"))
    figures["vng --kconfig cold build"] = sh(
        ["make", "-C", str(tree), f"O={vng_out}", f"-j{os.cpu_count()}", "CC=ccache gcc", "bzImage"], vng_env)
    out = {"machine": machine(), "seconds": figures, "options_y": {"lean": lean, "vng --kconfig": options},
           "speedup_cold_build": figures["vng --kconfig cold build"] / figures["cold check: build stage"]}
    save(results_file, out)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
