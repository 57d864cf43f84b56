#!/usr/bin/env python3
"""The critical threads make no system call in steady state except to park
(docs/architecture.md), shown on real runs of the demo with the kernel's
own syscall tracepoint (perf record -e raw_syscalls:sys_enter: each call's
thread name, time, number and first arguments, without stopping the
thread as strace would).

Steady state is from 2 s after a critical thread's first call to 1 s
before its last (start-up and the drain are left out). In it, a critical
thread (rfx-rt*) may only

  - sleep until its next frame is due (clock_nanosleep),
  - park on one of the engine's wait points, or wake another critical
    thread parked on one (futex FUTEX_WAIT_PRIVATE / FUTEX_WAKE_PRIVATE on
    a word some critical thread parks on).

With `[engine] layout = latency` the spinning thread makes no call at all.

In particular they never wake liburcu's shared grace-period futex (a
strategic worker's publication that went to sleep waiting for a reader):
the critical threads are quiet RCU readers and the watchdog wakes such a
publication (src/action_cache.c). A third run makes that happen hundreds
of times: decide stalls (spinning, online) 10 ms of every frame while the
planner publishes 50 times a second, so most grace periods begin during a
stall and go to sleep. Before the critical threads were quiet, that run
had them wake the futex 162 times for 324 publications.

usage: test_syscalls.py REFLEX"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from scratch import finish

reflex = sys.argv[1]
failures = 0
NR_FUTEX, NR_CLOCK_NANOSLEEP = 202, 230  # x86-64
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE, FUTEX_PRIVATE = 0x80, 0x81, 0x80


def check(ok, what, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ' ' + detail}")
    failures += not ok


perf = shutil.which("perf")
if os.uname().machine != "x86_64":
    print("SKIP: the syscall numbers here are x86-64's")
    sys.exit(77)
if not perf:
    print("FAIL perf is not installed (Debian linux-perf; tools/run.sh installs it)")
    sys.exit(1)
work = tempfile.mkdtemp(prefix="rfx-syscalls-")
env = dict(os.environ, HOME=work)  # perf's build-id cache goes here, not in ~
LINE = re.compile(r"^\s*(\S+)\s+(\d+)\s+(\d+\.\d+):\s+raw_syscalls:sys_enter: NR (\d+) "
                  r"\(([0-9a-f]+), ([0-9a-f]+)")


def traced(name, extra, seconds=8):
    """The demo under perf: [(thread, tid, t, nr, arg0, arg1)] and summary.json."""
    data, out = os.path.join(work, name + ".data"), os.path.join(work, name)
    r = subprocess.run([perf, "record", "-q", "-o", data, "-e", "raw_syscalls:sys_enter",
                        reflex, "demo", "--duration", str(seconds), "--quiet", "--out", out]
                       + extra, env=env, capture_output=True, text=True, timeout=seconds + 120)
    if r.returncode != 0 and not os.path.exists(os.path.join(out, "summary.json")):
        print(f"SKIP: perf cannot record the syscall tracepoint here: {r.stderr.strip()[-300:]}")
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(77)
    check(r.returncode == 0, f"{name}: the demo under perf record exits 0", r.stderr[-1500:])
    script = subprocess.run([perf, "script", "-i", data, "-F", "comm,tid,time,event,trace"],
                            env=env, capture_output=True, text=True, timeout=300).stdout
    calls = []
    for line in script.splitlines():
        m = LINE.match(line)
        if m:
            calls.append((m.group(1), m.group(2), float(m.group(3)), int(m.group(4)),
                          int(m.group(5), 16), int(m.group(6), 16)))
    with open(os.path.join(out, "summary.json")) as f:
        return calls, json.load(f)


def steady(calls):
    """{critical thread name: [its calls in steady state]}."""
    crit = [c for c in calls if c[0].startswith("rfx-rt")]
    by = {}
    for name in {c[0] for c in crit}:
        own = [c for c in crit if c[0] == name]
        start, stop = own[0][2] + 2.0, own[-1][2] - 1.0
        by[name] = [c for c in own if start <= c[2] <= stop]
    return by


def describe(c):
    if c[3] == NR_FUTEX:
        return f"futex({c[4]:#x}, op {c[5]:#x})"
    return f"syscall {c[3]}({c[4]:#x}, {c[5]:#x})"


def check_steady(run, calls):
    """Every critical thread's steady-state calls are timed sleeps, or parks
    and wakes on the engine's own wait points; none wakes liburcu's futex."""
    by = steady(calls)
    points = {c[4] for c in calls if c[0].startswith("rfx-rt") and c[3] == NR_FUTEX
              and c[5] == FUTEX_WAIT_PRIVATE}
    check(len(by) >= 2, f"{run}: critical threads seen: {sorted(by)}")
    for name, cs in sorted(by.items()):
        bad = [c for c in cs if not (c[3] == NR_CLOCK_NANOSLEEP or
                                     (c[3] == NR_FUTEX and c[5] in (FUTEX_WAIT_PRIVATE,
                                                                    FUTEX_WAKE_PRIVATE)
                                      and c[4] in points))]
        sleeps = sum(c[3] == NR_CLOCK_NANOSLEEP for c in cs)
        check(cs and not bad, f"{run}: {name}: {len(cs)} calls in steady state: {sleeps} timed "
              f"sleeps, {len(cs) - sleeps} parks and wakes on the engine's wait points",
              f"{len(bad)} others: " + "; ".join(describe(c) for c in bad[:5]))
    # liburcu's futex is a shared (not private) one.
    shared = [c for cs in by.values() for c in cs
              if c[3] == NR_FUTEX and not c[5] & FUTEX_PRIVATE]
    check(not shared, f"{run}: {len(shared)} wakes of liburcu's grace-period futex by critical "
          "threads in steady state", "; ".join(f"{c[0]} {describe(c)}" for c in shared[:5]))


# The default layout at 60 Hz: both critical threads sleep between frames,
# and the planner publishes snapshots a few times a second.
calls, summary = traced("default", [])
check_steady("default", calls)
check(summary["cache"]["publications"] >= 10,
      f"default: {summary['cache']['publications']} publications, their grace periods "
      f"{summary['cache']['grace_period_mean_ms']:.3f} ms on average, "
      f"{summary['cache']['grace_period_max_ms']:.3f} ms at most")

# Grace periods that must wait for a critical thread: decide spins 10 ms of
# every frame (online, no quiescent state) while the planner publishes 50
# times a second; the ladder is off so that planning goes on, and the
# watchdog's stack dump (a signal to the stalled thread, by design) is off.
calls, summary = traced("stalled", [
    "--set", "degrade.enabled=false", "--set", "watchdog.stack_dump=false", "--set", "strategic.hz=50", "--set", "strategic.min_hz=50",
    "--set", "strategic.max_hz=50", "--set", "fault.stall_stage=decide",
    "--set", "fault.stall_ms=10", "--set", "fault.stall_every=1"])
check_steady("stalled", calls)
pubs, woken = summary["cache"]["publications"], summary["watchdog"]["grace_periods_woken"]
check(pubs >= 100 and woken * 10 >= pubs,
      f"stalled: {woken} of {pubs} publications went to sleep waiting for a critical thread and "
      "were woken by the watchdog (at least a tenth)")
# Each woken publication ends soon after the stall that held it: the stall
# (10 ms) and a watchdog look (an eighth of the frame budget) apart, so on
# average within that. Had no one woken them, they would wait for the
# critical threads' exit at the end of the 8-s run. The longest also counts
# the publishing worker's own wait for a CPU after the wake: it runs
# SCHED_IDLE, behind every other runnable thread (perf record's too), and
# once took 88 ms here (the others of that run 5.1 ms on average).
gmax, every = summary["cache"]["grace_period_max_ms"], summary["watchdog"]["check_every_ms"]
gmean = summary["cache"]["grace_period_mean_ms"]
check(gmean < 10 + every and gmax < 500,
      f"stalled: grace periods {gmean:.3f} ms on average (stall 10 ms, watchdog look every "
      f"{every:.3f} ms), the longest {gmax:.3f} ms (an unwoken one: the rest of the run)")
check(summary["frames"]["identity_holds"] and summary["frames"]["in_flight"] == 0,
      "stalled: the accounting identity holds, in flight 0")

# The latency layout: capture..execute on one thread that spins between
# frames (docs/config.md): in steady state it makes no system call at all.
calls, summary = traced("latency", ["--set", "engine.layout=latency"])
by = steady(calls)
check("rfx-rt0" in by, f"latency: the spinning thread seen: {sorted(by)}")
cs = by.get("rfx-rt0", [])
check(not cs, f"latency: rfx-rt0: {len(cs)} system calls in steady state",
      "; ".join(describe(c) for c in cs[:5]))

finish(failures, work)
