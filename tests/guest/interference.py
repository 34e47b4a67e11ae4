"""Interference accounting: what reached each CPU of interest while a guest
test's body ran, by source.

For every test the plugin (loaded by conftest.py) records, per CPU of
interest (the profile's isolated CPUs):

- irq, softirq: the per-CPU deltas of every /proc/interrupts and
  /proc/softirqs row;
- ipi: ipi:ipi_send_cpu and ipi:ipi_send_cpumask aimed at the CPU, by
  callback and callsite; csd: csd:csd_queue_cpu aimed at it, by function;
- work_queued: workqueue:workqueue_queue_work for the CPU, work_run:
  workqueue:workqueue_execute_start on it, both by function;
- ran: threads switched in there (sched:sched_switch, by command; the
  stop_machine stoppers are "migration/N"), timers: timer:timer_expire_entry
  and timer:hrtimer_expire_entry on it, by function;
- ns: how long each kind of noise took on the CPU, from the osnoise
  tracer's irq_noise, softirq_noise, thread_noise and nmi_noise events
  (nanoseconds by vector name or command, net of nested noise). The tracer
  runs with NO_OSNOISE_WORKLOAD, so it starts no threads of its own and
  measures whatever runs on the CPUs of interest. Durations are recorded,
  never budgeted under TCG, where they measure the emulator; a quiet
  budget's ``noise_us`` is judged only where ISOLHARNESS_DURATIONS=1
  (``test --target``, real hardware).

The events are enabled once, in a tracefs instance of its own
(instances/isolharness), so that tests that trace in the top instance keep
working and no test pays the text patching of enabling a tracepoint; each
test only switches that instance's tracing_on. The plugin's own reads run
in the pytest process, on the housekeeping CPUs.

The account goes into the test's JUnit properties ("interference", compact
JSON: non-zero counts only), which the harness carries into junit.xml and
summary.json. A test declares a budget with a marker:

    @pytest.mark.quiet("blocked")                       # nothing but BACKGROUND
    @pytest.mark.quiet("blocked", allow=("timers",))    # nor the timers

("blocked" and "free" name the first and second isolated CPU, as
test_block_interf.py uses them, "last" the highest, "isolated" all of
them, a number a CPU.) Every quiet budget allows BACKGROUND, the sources
stock 6.12 sends an isolated CPU whatever the test does. A source the budget
does not allow fails the test with the itemized account. The opposite
marker, @pytest.mark.interrupts("free", "csd:remote_function"), fails the
test when the account does NOT show that source on that CPU ("{cpu}" in it
is the CPU's number: "ran:migration/{cpu}"): the positive control that the
account sees what it should. A test can also take the `interference`
fixture and judge a stretch of its body: `with interference.window() as w:`
gives w.account.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cpulist import cpulist
from tracing import TRACING, tracefs_mounted

INSTANCE = TRACING / "instances" / "isolharness"
EVENTS = ("ipi/ipi_send_cpu", "ipi/ipi_send_cpumask", "csd/csd_queue_cpu", "workqueue/workqueue_queue_work",
          "workqueue/workqueue_execute_start", "sched/sched_switch", "timer/timer_expire_entry",
          "timer/hrtimer_expire_entry")
# Each event filtered in the kernel to what concerns the CPUs of interest
# ("{cpus}": "cpu == 2 || cpu == 3"; CPU is the CPU an event is written on):
# unfiltered, the housekeeping CPUs' own ticks and switches fill the buffer
# with lines that only cost parsing. A filter the kernel refuses (older
# kernels lack cpumask filters) leaves the event unfiltered; attribute()
# charges lines to the CPUs of interest only either way.
FILTERS = {"ipi/ipi_send_cpu": "{cpu}", "ipi/ipi_send_cpumask": "cpumask & CPUS{{{list}}}",
           "csd/csd_queue_cpu": "{cpu}", "workqueue/workqueue_queue_work": "{cpu}",
           "workqueue/workqueue_execute_start": "{CPU}", "sched/sched_switch": "{CPU}",
           "timer/timer_expire_entry": "{CPU}", "timer/hrtimer_expire_entry": "{CPU}"}
# The osnoise tracer runs in a second instance whose tracing_on is never
# touched (turning an instance's tracing off stops its tracer, and starting
# it again patches text on every CPU); its noise events are recorded in
# INSTANCE with the others. Its cpus and options files are global.
OSNOISE = TRACING / "osnoise"
TRACER = TRACING / "instances" / "isolharness-osnoise"
NOISE_EVENTS = ("osnoise/irq_noise", "osnoise/softirq_noise", "osnoise/thread_noise", "osnoise/nmi_noise")
# What stock 6.12 sends an isolated CPU whatever the test does, measured
# on idle and busy nohz_full CPUs of the default profile under TCG
# (tests/guest/test_interference.py shows each): the residual tick (its
# interrupt and its hrtimer, tick_nohz_handler, on a CPU running a task); the
# clocksource watchdog, whose timer visits every online CPU in turn; the
# nohz_full kick (an irq_work IPI running nohz_full_kick_func); and, on a
# CPU that runs a task, the fair server's replenishment timer rescheduling
# it and RCU forcing a quiescent state (resched_cpu, its softirq), and the
# CPU's ksoftirqd when softirqs pile up (a debug kernel). A quiet budget
# always allows these ("{cpu}" is the CPU's number); its ``allow`` adds.
# Each of them is an identity: what a refused operation would send shows up
# under a name of its own (csd:remote_function, ran:migration/N, ...).
BACKGROUND = ("irq:LOC", "timers:tick_nohz_handler", "irq:CAL", "irq:IWI", "irq:RES", "softirq:TIMER",
              "timers:clocksource_watchdog",
              "csd:nohz_full_kick_func", "ipi:generic_smp_call_function_single_interrupt from irq_work_queue_on",
              "ipi:0x0 from dl_task_timer", "ipi:0x0 from resched_cpu", "softirq:RCU",
              "ipi:nohz_full_kick_func from irq_work_queue", "ran:ksoftirqd/{cpu}")
PROPERTY = "interference"
PLUGIN_NAME = "isolharness-interference"
# Sources whose counts are identities and counts under TCG; durations would
# only mean something on real hardware, and none is budgeted yet.
SOURCES = ("irq", "softirq", "ipi", "csd", "work_queued", "work_run", "ran", "timers")

_LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+"
                   r"(?P<event>\w+):\s+(?P<body>.*)$")


def _sym(text: str) -> str:
    """A %pS symbol without its offset: "generic_exec_single+0x3a/0xd0" -> name."""
    return text.split("+", 1)[0]


def _fields(body: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", body))


def _mask(text: str) -> list[int]:
    """A %*pb bitmask ("0000000c" or "00000000,0000000c") as CPU numbers."""
    bits = int(text.replace(",", ""), 16)
    return [cpu for cpu in range(bits.bit_length()) if bits >> cpu & 1]


def timestamp_ns(line: str) -> int | None:
    m = _LINE.match(line)
    if not m:
        return None
    sec, _, usec = m.group("ts").partition(".")
    return int(sec) * 1_000_000_000 + int(usec.ljust(6, "0")[:6]) * 1000


def attribute(line: str) -> list[tuple[int, str, str]]:
    """The (cpu, source, what) items one trace line charges to CPUs."""
    m = _LINE.match(line)
    if not m:
        return []
    event, body, here = m.group("event"), m.group("body"), int(m.group("cpu"))
    f = _fields(body)
    if event == "ipi_send_cpu":
        return [(int(f["cpu"]), "ipi", f"{_sym(f['callback'])} from {_sym(f['callsite'])}")]
    if event == "ipi_send_cpumask":
        what = f"{_sym(f['callback'])} from {_sym(f['callsite'])}"
        return [(cpu, "ipi", what) for cpu in _mask(f["cpumask"])]
    if event == "csd_queue_cpu":
        return [(int(f["cpu"]), "csd", _sym(f["func"]))]
    if event == "workqueue_queue_work":
        return [(int(f["cpu"]), "work_queued", _sym(f["function"]))]
    if event == "workqueue_execute_start":
        fn = re.search(r"function (\S+)", body)
        return [(here, "work_run", _sym(fn.group(1)))] if fn else []
    if event == "sched_switch":
        if f.get("next_pid") == "0":
            return []
        nxt = re.search(r"==> next_comm=(.+?) next_pid=", body)
        return [(here, "ran", nxt.group(1) if nxt else "?")]
    if event in ("timer_expire_entry", "hrtimer_expire_entry"):
        return [(here, "timers", _sym(f.get("function", "?")))]
    return []


_NOISE = re.compile(r"^(?:(?P<what>.*):(?P<id>-?\d+) )?start \d+\.\d+ duration (?P<ns>\d+) ns$")


def noise(line: str) -> tuple[int, str, str, int] | None:
    """(cpu, kind, what, ns) of an osnoise noise event: kind irq, softirq,
    thread or nmi; what the vector's name or the thread's command."""
    m = _LINE.match(line)
    if not m or not m.group("event").endswith("_noise"):
        return None
    kind = m.group("event")[:-len("_noise")]
    n = _NOISE.match(m.group("body").strip())
    if kind not in ("irq", "softirq", "thread", "nmi") or not n:
        return None
    ns = int(n.group("ns"))
    if ns >= 1 << 63:            # a negative duration (the tracer taints)
        return None
    if kind == "thread" and n.group("id") == "0":
        return None              # the idle task is no noise
    return int(m.group("cpu")), kind, (n.group("what") or kind).strip(), ns


def _per_cpu_rows(path: Path) -> dict[str, list[int]]:
    """Rows of /proc/interrupts or /proc/softirqs: name -> per-CPU counts."""
    lines = path.read_text().splitlines()
    ncpu = len(lines[0].split())
    rows = {}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        counts = rest.split()[:ncpu]
        if len(counts) == ncpu and all(c.isdigit() for c in counts):
            rows[name.strip()] = [int(c) for c in counts]
    return rows


def _counters() -> dict[str, dict[str, list[int]]]:
    return {"irq": _per_cpu_rows(Path("/proc/interrupts")), "softirq": _per_cpu_rows(Path("/proc/softirqs"))}


@dataclass
class Account:
    """Per CPU of interest: source -> what -> count (non-zero only)."""
    cpus: tuple[int, ...]
    counts: dict[int, dict[str, Counter]] = field(default_factory=dict)
    seconds: float = 0.0
    lost: bool = False          # the trace buffer overflowed: the account is a lower bound
    ns: dict[int, dict[str, Counter]] = field(default_factory=dict)   # cpu -> noise kind -> what -> ns
    durations: str = ""         # why there are no durations ("" when there are)

    def add(self, cpu: int, source: str, what: str, n: int = 1) -> None:
        if cpu in self.cpus and n:
            self.counts.setdefault(cpu, {}).setdefault(source, Counter())[what] += n

    def add_ns(self, cpu: int, kind: str, what: str, ns: int) -> None:
        if cpu in self.cpus and ns:
            self.ns.setdefault(cpu, {}).setdefault(kind, Counter())[what] += ns

    def noise_us(self, cpu: int) -> float:
        """All the noise the CPU had, in microseconds."""
        return sum(sum(c.values()) for c in self.ns.get(cpu, {}).values()) / 1000

    def on(self, cpu: int) -> dict[str, Counter]:
        return self.counts.get(cpu, {})

    def compact(self, meta: dict | None = None) -> str:
        """The JUnit property (harness/interference.py reads it)."""
        data: dict = {str(cpu): {src: dict(sorted(c.items())) for src, c in sorted(srcs.items())}
                      for cpu, srcs in sorted(self.counts.items())}
        if self.lost:
            data["lost"] = True
        if self.ns:
            data["ns"] = {str(cpu): {kind: dict(sorted(c.items())) for kind, c in sorted(kinds.items())}
                          for cpu, kinds in sorted(self.ns.items())}
        if self.durations:
            data["durations"] = self.durations
        data.update(meta or {})
        return json.dumps(data, separators=(",", ":"))

    def itemize(self, cpu: int, keys: set[str] | None = None) -> str:
        """The lines of CPU's account, optionally only the source:what keys given."""
        out = []
        for src, c in sorted(self.on(cpu).items()):
            for what, n in sorted(c.items()):
                if keys is None or f"{src}:{what}" in keys:
                    out.append(f"CPU {cpu}: {src} {what} x{n}")
        return "\n".join(out)


class Recorder:
    """The harness's tracefs instance, and the counters around a body."""

    def __init__(self, cpus: tuple[int, ...]):
        self.cpus = cpus
        self.available = False
        self.why = ""
        self.noise = False          # the osnoise tracer runs for the account
        self.noise_why = ""
        self._osnoise_saved: dict[str, str] = {}
        self._before: dict[str, dict[str, list[int]]] = {}
        self._start = 0.0

    def open(self) -> None:
        if not self.cpus:
            self.why = "no CPU of interest: the kernel isolates no CPU (isolcpus=, nohz_full=)"
            return
        try:
            if not tracefs_mounted():
                self.why = f"cannot mount tracefs on {TRACING}"
                return
            INSTANCE.mkdir(exist_ok=True)
            (INSTANCE / "tracing_on").write_text("0\n")
            (INSTANCE / "trace_clock").write_text("mono\n")
            (INSTANCE / "buffer_size_kb").write_text("2048\n")
            for event in EVENTS:
                self._filter(event)
                (INSTANCE / "events" / event / "enable").write_text("1\n")
            self.available = True
        except OSError as exc:
            self.why = f"tracefs instance {INSTANCE}: {exc}"
            return
        self._open_osnoise()

    def _filter(self, event: str) -> None:
        template = FILTERS.get(event)
        if not template:
            return
        expr = template.format(cpu=" || ".join(f"cpu == {c}" for c in self.cpus),
                               CPU=" || ".join(f"CPU == {c}" for c in self.cpus),
                               list=",".join(map(str, self.cpus)))
        try:
            (INSTANCE / "events" / event / "filter").write_text(expr + "\n")
        except OSError:
            pass

    def _open_osnoise(self) -> None:
        if "osnoise" not in (TRACING / "available_tracers").read_text().split():
            self.noise_why = "no osnoise tracer in this kernel (CONFIG_OSNOISE_TRACER)"
            return
        try:
            self._osnoise_saved = {"cpus": (OSNOISE / "cpus").read_text().strip()}
            # Before the tracer starts: with the workload option on, it
            # would start a busy-looping thread on every CPU.
            (OSNOISE / "options").write_text("NO_OSNOISE_WORKLOAD\n")
            (OSNOISE / "cpus").write_text(",".join(map(str, self.cpus)) + "\n")
            TRACER.mkdir(exist_ok=True)
            (TRACER / "buffer_size_kb").write_text("8\n")
            (TRACER / "current_tracer").write_text("osnoise\n")
            for event in NOISE_EVENTS:
                (INSTANCE / "events" / event / "enable").write_text("1\n")
            self.noise = True
        except OSError as exc:
            self.noise_why = f"osnoise tracer: {exc}"
            self._close_osnoise()

    def _close_osnoise(self) -> None:
        for step in (lambda: [(INSTANCE / "events" / e / "enable").write_text("0\n") for e in NOISE_EVENTS],
                     lambda: (TRACER / "current_tracer").write_text("nop\n"),
                     lambda: TRACER.rmdir(),
                     lambda: (OSNOISE / "options").write_text("DEFAULTS\n"),
                     lambda: (OSNOISE / "cpus").write_text(self._osnoise_saved["cpus"] + "\n")):
            try:
                step()
            except (OSError, KeyError):
                pass
        self.noise = False

    def close(self) -> None:
        if self.noise or TRACER.is_dir():
            self._close_osnoise()
        if INSTANCE.is_dir():
            try:
                (INSTANCE / "tracing_on").write_text("0\n")
                for event in EVENTS:
                    (INSTANCE / "events" / event / "enable").write_text("0\n")
                    if event in FILTERS:
                        (INSTANCE / "events" / event / "filter").write_text("0\n")
                INSTANCE.rmdir()
            except OSError:
                pass

    def start(self) -> None:
        if self.available:
            (INSTANCE / "trace").write_text("")
        self._before = _counters()
        self._start = time.monotonic()
        if self.available:
            (INSTANCE / "tracing_on").write_text("1\n")

    def stop(self) -> Account:
        if self.available:
            (INSTANCE / "tracing_on").write_text("0\n")
        return self._account(self._before, _counters(), None, time.monotonic() - self._start)

    @contextmanager
    def window(self):
        """The account of a stretch of a test body (the body is being traced):
        the counters around it, the trace lines stamped inside it."""
        if not self.available:
            pytest.fail(f"no interference account: {self.why}")
        win = Window()
        before, start = _counters(), time.monotonic_ns()
        yield win
        end, after = time.monotonic_ns(), _counters()
        win.account = self._account(before, after, (start, end), (end - start) / 1e9)

    def _account(self, before, after, span: tuple[int, int] | None, seconds: float) -> Account:
        account = Account(self.cpus, seconds=seconds, durations="" if self.noise else self.noise_why)
        for kind, rows in after.items():
            for name, counts in rows.items():
                old = before.get(kind, {}).get(name)
                if old is None:
                    continue
                for cpu in self.cpus:
                    if cpu < len(counts):
                        account.add(cpu, kind, name, counts[cpu] - old[cpu])
        if not self.available:
            return account
        for line in (INSTANCE / "trace").read_text().splitlines():
            if line.startswith("#"):
                continue
            if span is not None:
                stamp = timestamp_ns(line)
                if stamp is None or not span[0] <= stamp <= span[1]:
                    continue
            for cpu, source, what in attribute(line):
                account.add(cpu, source, what)
            timed = noise(line) if self.noise else None
            if timed:
                account.add_ns(*timed)
        # Every CPU's buffer: most events (an IPI sent, work queued) are
        # written on the housekeeping CPU that causes them.
        for stats in (INSTANCE / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"overrun: (\d+)", stats.read_text())
            if m and int(m.group(1)):
                account.lost = True
        return account


@dataclass
class Window:
    account: Account | None = None


def resolve_cpus(name: str | int, isolated: list[int]) -> list[int]:
    """A marker's CPU: a number, "blocked" and "free" (the first and second
    isolated CPU, as test_block_interf.py uses them), "last" (the highest)
    or "isolated" (all)."""
    if isinstance(name, int):
        return [name]
    if name == "isolated":
        return list(isolated)
    index = {"blocked": 0, "free": 1, "last": len(isolated) - 1}.get(name)
    if index is None or index >= len(isolated):
        raise pytest.UsageError(f"interference marker: no CPU {name!r} among the isolated {isolated}")
    return [isolated[index]]


def _keys(account: Account, cpu: int, allowed: tuple[str, ...]) -> set[str]:
    """The source:what keys of CPU's account that ``allowed`` does not name
    (by key, or a whole source)."""
    return {f"{src}:{what}" for src, c in account.on(cpu).items() for what in c
            if src not in allowed and f"{src}:{what}" not in allowed}


def violations(account: Account, cpu: int, allow: tuple[str, ...]) -> str:
    """What the account shows on CPU beyond BACKGROUND and what ``allow``
    names ("irq:LOC", or a whole source, "timers")."""
    keys = _keys(account, cpu, tuple(a.format(cpu=cpu) for a in (*BACKGROUND, *allow)))
    return account.itemize(cpu, keys) if keys else ""


def background(account: Account, cpu: int) -> list[str]:
    """"cpu:source:what" of what CPU's account shows of BACKGROUND."""
    outside = _keys(account, cpu, tuple(a.format(cpu=cpu) for a in BACKGROUND))
    return [f"{cpu}:{src}:{what}" for src, c in sorted(account.on(cpu).items()) for what in sorted(c)
            if f"{src}:{what}" not in outside]


def durations_budgeted() -> bool:
    """Durations are budgeted on real hardware only (``test --target`` sets
    ISOLHARNESS_DURATIONS=1); under TCG they measure the emulator."""
    return os.environ.get("ISOLHARNESS_DURATIONS") == "1"


def noise_problem(account: Account, cpu: int, limit_us: float) -> str:
    """A quiet budget's ``noise_us``: the CPU's noise beyond it, itemized."""
    if account.durations:
        return f"CPU {cpu} has a noise budget of {limit_us} us, but no durations were recorded: {account.durations}"
    if account.noise_us(cpu) <= limit_us:
        return ""
    timed = sorted(((ns, kind, what) for kind, c in account.ns.get(cpu, {}).items() for what, ns in c.items()),
                   reverse=True)
    items = [f"CPU {cpu}: {kind} {what} {ns / 1000:.1f} us" for ns, kind, what in timed]
    return f"CPU {cpu} had {account.noise_us(cpu):.1f} us of noise, over its budget of {limit_us} us:\n" + \
        "\n".join(items)


def budget_problems(account: Account, item, isolated: list[int]) -> list[str]:
    """What the test's quiet/interrupts markers say is wrong with the account."""
    problems = []
    for mark in item.iter_markers("quiet"):
        for cpu in resolve_cpus(mark.args[0], isolated):
            extra = violations(account, cpu, tuple(mark.kwargs.get("allow", ())))
            if extra:
                problems.append(f"CPU {cpu} must stay quiet, but the account shows:\n{extra}")
            limit = mark.kwargs.get("noise_us")
            if limit is not None and durations_budgeted():
                over = noise_problem(account, cpu, float(limit))
                if over:
                    problems.append(over)
    for mark in item.iter_markers("interrupts"):
        for cpu in resolve_cpus(mark.args[0], isolated):
            src, _, what = mark.args[1].format(cpu=cpu).partition(":")
            if not account.on(cpu).get(src, Counter()).get(what):
                problems.append(f"the account of CPU {cpu} lacks {src}:{what} (it is blind to it):\n"
                                f"{account.itemize(cpu) or '(empty)'}")
    return problems


class Plugin:
    def __init__(self, isolated: list[int]):
        self.isolated = isolated
        self.recorder = Recorder(tuple(isolated))

    def pytest_sessionstart(self, session):
        self.recorder.open()

    def pytest_sessionfinish(self, session):
        self.recorder.close()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        self.recorder.start()
        outcome = yield
        account = self.recorder.stop()
        if not self.recorder.available:
            # Reported as unavailable, never as an empty account; a budget
            # that cannot be judged is a skip, not a pass.
            item.user_properties.append((PROPERTY, json.dumps({"unavailable": self.recorder.why})))
            if outcome.excinfo is None and (any(item.iter_markers("quiet")) or any(item.iter_markers("interrupts"))):
                outcome.force_exception(pytest.skip.Exception(f"interference budget not judged: {self.recorder.why}",
                                                              _use_item_location=True))
            return
        meta = {}
        for mark in item.iter_markers("quiet"):
            cpus = resolve_cpus(mark.args[0], self.isolated)
            meta.setdefault("quiet", set()).update(map(str, cpus))
            meta.setdefault("allow", set()).update(mark.kwargs.get("allow", ()))
            for cpu in cpus:
                meta.setdefault("background", set()).update(background(account, cpu))
        if not meta.get("background", True):
            del meta["background"]
        item.user_properties.append((PROPERTY, account.compact({k: sorted(v) for k, v in meta.items()})))
        if outcome.excinfo is not None:
            return
        problems = budget_problems(account, item, self.isolated)
        if problems and account.lost:
            problems.append("(the trace buffer overflowed: counts are lower bounds)")
        if problems:
            outcome.force_exception(pytest.fail.Exception("interference budget:\n" + "\n".join(problems),
                                                          pytrace=False))


OFF = "interference account turned off (ISOLHARNESS_INTERFERENCE=0, bench/interference.py)"


def turned_off() -> bool:
    return os.environ.get("ISOLHARNESS_INTERFERENCE") == "0"


class Off:
    """With the account turned off, a test that needs it is skipped, saying
    so, rather than passing unjudged."""

    def pytest_runtest_setup(self, item):
        if any(item.iter_markers("quiet")) or any(item.iter_markers("interrupts")) or \
                "interference" in getattr(item, "fixturenames", ()):
            pytest.skip(OFF)


def register(config) -> None:
    config.addinivalue_line("markers", "quiet(cpu, allow=(), noise_us=None): the CPU sees nothing during the "
                                       "body but the sources allowed, nor more noise on real hardware "
                                       "(tests/guest/interference.py)")
    config.addinivalue_line("markers", "interrupts(cpu, 'source:what'): the account must show it")
    isolated = cpulist(os.environ.get("ISOLHARNESS_ISOLATED", ""))
    if not (Path("/sys/kernel").exists() and "ISOLHARNESS_SERIES" in os.environ):
        return
    # Without isolated CPUs (a --target machine booted without isolcpus=)
    # every test's account says so: unavailable, never empty.
    config.pluginmanager.register(Off() if turned_off() else Plugin(isolated), PLUGIN_NAME)
