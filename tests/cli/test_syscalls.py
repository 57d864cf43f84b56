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

Over the whole run, the critical threads' wakes of liburcu's shared
grace-period futex (a strategic worker's publication that went to sleep
waiting for a reader) must be under a tenth of the publications. They
were one per publication while the source slept online between frames;
now one comes only when a grace period begins during a burst and outlasts
liburcu's spinning, which a run seldom shows.

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


# The default layout at 60 Hz: both critical threads sleep between frames,
# and the planner publishes snapshots a few times a second.
calls, summary = traced("default", [])
by = steady(calls)
points = {c[4] for c in calls if c[0].startswith("rfx-rt") and c[3] == NR_FUTEX
          and c[5] == FUTEX_WAIT_PRIVATE}
check(len(by) >= 2, f"default: critical threads seen: {sorted(by)}")
for name, cs in sorted(by.items()):
    bad = [c for c in cs if not (c[3] == NR_CLOCK_NANOSLEEP or
                                 (c[3] == NR_FUTEX and c[5] in (FUTEX_WAIT_PRIVATE,
                                                                FUTEX_WAKE_PRIVATE)
                                  and c[4] in points))]
    sleeps = sum(c[3] == NR_CLOCK_NANOSLEEP for c in cs)
    check(cs and not bad, f"default: {name}: {len(cs)} calls in steady state: {sleeps} timed "
          f"sleeps, {len(cs) - sleeps} parks and wakes on the engine's wait points",
          f"{len(bad)} others: " + "; ".join(describe(c) for c in bad[:5]))
shared = [c for c in calls if c[0].startswith("rfx-rt") and c[3] == NR_FUTEX
          and not c[5] & FUTEX_PRIVATE]
pubs = summary["cache"]["publications"]
check(pubs >= 10 and len(shared) * 10 < pubs,
      f"default: {len(shared)} wakes of liburcu's grace-period futex by critical threads over "
      f"the run, for {pubs} publications (under a tenth)",
      "; ".join(f"{c[0]} {describe(c)}" for c in shared[:5]))

# The latency layout: capture..execute on one thread that spins between
# frames (docs/config.md): in steady state it makes no system call at all.
calls, summary = traced("latency", ["--set", "engine.layout=latency"])
by = steady(calls)
check("rfx-rt0" in by, f"latency: the spinning thread seen: {sorted(by)}")
cs = by.get("rfx-rt0", [])
check(not cs, f"latency: rfx-rt0: {len(cs)} system calls in steady state",
      "; ".join(describe(c) for c in cs[:5]))

finish(failures, work)
