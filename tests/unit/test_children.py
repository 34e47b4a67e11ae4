"""Children of a run die with it: a harness killed outright (SIGKILL) leaves
no process group behind, and a normal stop ends the group and its reaper."""

import os
import signal
import subprocess
import sys
import time

from harness.children import Group

HOLDER = ("import sys, time\nfrom harness.children import Group\n"
          "g = Group(['sh', '-c', 'sleep 300 & sleep 300'])\nprint(g.proc.pid, flush=True)\ntime.sleep(300)\n")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


def test_a_killed_harness_leaves_no_group_behind():
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    pgid = int(holder.stdout.readline())
    try:
        time.sleep(0.5)
        assert group_alive(pgid)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert wait_gone(pgid, 10), "the group outlived the SIGKILLed harness"
    finally:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)


def test_stop_ends_the_group_and_releases_the_reaper():
    g = Group(["sh", "-c", "sleep 300 & sleep 300"])
    pgid = g.proc.pid
    g.stop(grace=2)
    assert not group_alive(pgid)
    assert g._reaper.poll() == 0
    g.stop()  # twice is fine


def test_a_group_whose_leader_exited_is_still_stopped():
    # vng can exit first and leave QEMU running in its group.
    g = Group(["sh", "-c", "sleep 300 & exit 0"])
    pgid = g.proc.pid
    g.proc.wait()
    assert group_alive(pgid)
    g.stop(grace=2)
    assert not group_alive(pgid)
