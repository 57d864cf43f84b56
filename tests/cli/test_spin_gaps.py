#!/usr/bin/env python3
"""A spinning thread counts the times its CPU was taken from it
(summary.json threads[].spin_gaps_over_1ms, spin_gap_max_ms,
spin_gap_total_ms), so a run's tail can be told apart from the
pipeline's own.

The demo runs with `[engine] layout = latency`: capture..execute on one
thread spinning to each frame's due time on a core of its own. A hog
process on that core, at SCHED_FIFO, takes it for 3 ms every 100 ms; the
spinning thread must count at least half of those takings, none shorter
than its own 1-ms threshold, the longest at least 2.5 ms. Telemetry's
thread, which parks, counts none.

usage: test_spin_gaps.py REFLEX"""
import json
import os
import subprocess
import sys
import tempfile
import time

from scratch import Checks, finish

reflex = sys.argv[1]
check = Checks()
work = tempfile.mkdtemp(prefix="rfx-spin-gaps-")

if (os.cpu_count() or 1) < 2:
    print("skip: the latency layout needs 2 CPUs")
    finish(0, work)

core = 0  # the latency layout's spinning core on 2 to 4 CPUs (docs/architecture.md)
hog_src = f"""
import os, time
os.sched_setaffinity(0, {{{core}}})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
print("ready", flush=True)
end = time.monotonic() + 30
n = 0
while time.monotonic() < end:
    time.sleep(0.1)
    t = time.monotonic()
    while time.monotonic() - t < 0.003:
        pass
    n += 1
"""
out = os.path.join(work, "bundle")
demo = subprocess.Popen([reflex, "demo", "--duration", "4", "--out", out, "--quiet",
                         "--set", "engine.layout=latency"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(0.5)  # the engine started and its thread is spinning
hog = subprocess.Popen([sys.executable, "-c", hog_src], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
started = hog.stdout.readline().strip() == "ready"
if not started:
    hog.wait()
    demo.wait()
    err = hog.stderr.read()
    if "PermissionError" in err or "Operation not permitted" in err:
        print("skip: SCHED_FIFO is not permitted here (needs root or CAP_SYS_NICE)")
        finish(0, work)
    check(False, "the hog process started at SCHED_FIFO", err)
    finish(check.failures, work)
t0 = time.monotonic()
_, err = demo.communicate(timeout=60)
hogged_s = time.monotonic() - t0
hog.kill()
hog.wait()
check(demo.returncode == 0, "the demo exits 0", err)
with open(os.path.join(out, "summary.json")) as f:
    s = json.load(f)
th = {t["name"]: t for t in s["threads"]}
rt0, tel = th.get("rfx-rt0", {}), th.get("rfx-tel", {})
takes = int(hogged_s / 0.1033)  # one 3-ms take per 100 ms sleep
print(f"rt0 on core {rt0.get('core')}: {rt0.get('spin_gaps_over_1ms')} gaps over 1 ms, "
      f"longest {rt0.get('spin_gap_max_ms')} ms, {rt0.get('spin_gap_total_ms')} ms in all; "
      f"the hog took core {core} about {takes} times")
check(rt0.get("core") == core and rt0.get("wait") == "spin",
      f"rfx-rt0 spins on core {core}", str(rt0))
check(rt0.get("spin_gaps_over_1ms", 0) >= takes // 2,
      f"the spinning thread counted its core taken ({rt0.get('spin_gaps_over_1ms')} >= "
      f"{takes // 2})", str(rt0))
check(rt0.get("spin_gap_max_ms", 0) >= 2.5,
      f"the longest taking was the hog's 3 ms ({rt0.get('spin_gap_max_ms')} ms)", str(rt0))
check(rt0.get("spin_gap_total_ms", 0) >= rt0.get("spin_gaps_over_1ms", 0) * 1.0,
      "each counted gap is over 1 ms", str(rt0))
check(tel.get("spin_gaps_over_1ms") == 0 and tel.get("spin_gap_max_ms") == 0,
      "the parked telemetry thread counts none", str(tel))
finish(check.failures, work)
