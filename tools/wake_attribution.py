#!/usr/bin/env python3
"""Attribute a run's scheduling delays of reflex's critical threads.

Reads the text of an ftrace buffer holding sched:sched_switch and
sched:sched_wakeup (what /sys/kernel/tracing/trace prints) and, for every
rfx-rt* thread, finds each time it waited longer than a threshold to get
its CPU:

  wake from idle vCPU      woken on a CPU that was idle, ran late: the time a
                           (virtual) CPU takes to come back from idle
  wake, X ran first        woken while the CPU ran X, which went on running
                           (or another task X was picked first)
  preempted by X           taken off its CPU while runnable, X ran instead

and prints, per cause, how many, the longest and the total.

usage:
  cd /sys/kernel/tracing
  echo 1 > events/sched/sched_switch/enable
  echo 1 > events/sched/sched_wakeup/enable
  echo > trace; echo 1 > tracing_on
  ... run reflex or bench_pipeline ...
  echo 0 > tracing_on
  tools/wake_attribution.py /sys/kernel/tracing/trace [--min-us 50]

Threads are told apart by pid, so a trace of several runs (bench_pipeline
latency runs two layouts) is reported per run: a run is the set of rfx-rt*
pids that start while no rfx-rt* thread of an earlier run is alive.
"""
import argparse
import collections
import re
import sys

SWITCH = re.compile(
    r"\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\].*?\s(?P<t>\d+\.\d+): sched_switch: "
    r"prev_comm=(?P<prev>.*?) prev_pid=(?P<prev_pid>\d+) prev_prio=\d+ prev_state=(?P<state>\S+) "
    r"==> next_comm=(?P<next>.*?) next_pid=(?P<next_pid>\d+)")
WAKEUP = re.compile(
    r"\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\].*?\s(?P<t>\d+\.\d+): sched_wakeup: "
    r"comm=(?P<woken>.*?) pid=(?P<woken_pid>\d+) prio=\d+ target_cpu=(?P<target>\d+)")


def critical(comm):
    return comm.startswith("rfx-rt")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--min-us", type=float, default=50.0,
                    help="report waits longer than this (default 50)")
    a = ap.parse_args()
    threshold = a.min_us * 1e-6

    running = {}   # cpu -> comm on it
    woken = {}     # pid -> (time, what the target cpu was running)
    off = {}       # pid -> (time, state, who ran next)
    run_of = {}    # pid -> run number
    alive = set()  # rfx-rt* pids that have not exited
    runs = 0
    stats = collections.defaultdict(list)

    try:
        f = open(a.trace, encoding="utf-8", errors="replace")
    except OSError as e:
        print(f"wake_attribution: {a.trace}: {e.strerror}", file=sys.stderr)
        return 2
    lines = 0
    with f:
        for line in f:
            m = SWITCH.match(line)
            if m:
                lines += 1
                cpu, t = int(m["cpu"]), float(m["t"])
                prev, nxt = m["prev"], m["next"]
                prev_pid, next_pid = int(m["prev_pid"]), int(m["next_pid"])
                running[cpu] = nxt
                if critical(prev):
                    off[prev_pid] = (t, m["state"], nxt)
                    if m["state"].startswith(("X", "Z")):
                        alive.discard(prev_pid)
                if critical(nxt):
                    if next_pid not in run_of:
                        if not alive:
                            runs += 1
                        run_of[next_pid] = runs
                        alive.add(next_pid)
                    run = run_of[next_pid]
                    if next_pid in woken:
                        wt, was = woken.pop(next_pid)
                        if t - wt > threshold:
                            if was.startswith("swapper"):
                                cause = "wake from idle vCPU"
                            elif prev.startswith("swapper"):
                                cause = f"wake, {was} ran first"
                            else:
                                cause = f"wake, {prev} ran first"
                            stats[(run, cause)].append(t - wt)
                    elif next_pid in off:
                        ot, state, who = off[next_pid]
                        if state.startswith("R") and t - ot > threshold:
                            stats[(run, f"preempted by {who}")].append(t - ot)
                    off.pop(next_pid, None)
                continue
            m = WAKEUP.match(line)
            if m:
                lines += 1
                if critical(m["woken"]):
                    woken[int(m["woken_pid"])] = (float(m["t"]),
                                                  running.get(int(m["target"]), "?"))
    if lines == 0:
        print(f"wake_attribution: {a.trace}: no sched_switch or sched_wakeup events",
              file=sys.stderr)
        return 2
    if not run_of:
        print(f"wake_attribution: {a.trace}: no rfx-rt* thread in the trace", file=sys.stderr)
        return 2
    for run in range(1, runs + 1):
        rows = [(k[1], v) for k, v in stats.items() if k[0] == run]
        rows.sort(key=lambda r: -sum(r[1]))
        total = sum(sum(v) for _, v in rows)
        print(f"run {run}: waits over {a.min_us:g} us of rfx-rt* threads: "
              f"{sum(len(v) for _, v in rows)}, {total * 1e3:.1f} ms in all")
        for cause, v in rows:
            print(f"  {cause:40s} n={len(v):4d} max={max(v) * 1e6:8.0f} us "
                  f"total={sum(v) * 1e6:9.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
