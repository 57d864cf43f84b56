#!/usr/bin/env python3
"""reflex check on every bad config: exit 2 and the expected message, which
names the file and line ("FILE:LINE: section.key: ..."); on the good config:
exit 0 and the resolved layout."""
import os
import subprocess
import sys

reflex, confdir = sys.argv[1], sys.argv[2]
failures = 0
bad_dir = os.path.join(confdir, "bad")
files = sorted(f for f in os.listdir(bad_dir) if f.endswith(".ini"))
for name in files:
    path = os.path.join(bad_dir, name)
    with open(path) as f:
        first = f.readline()
    assert first.startswith("# expect: "), f"{name}: no '# expect:' line"
    expect = first[len("# expect: "):].rstrip("\n")
    want = f"{path}:{expect}" if expect[:1].isdigit() else expect
    p = subprocess.run([reflex, "check", path], capture_output=True, text=True)
    ok = p.returncode == 2 and want in p.stderr and (f"{path}:" in p.stderr)
    if not ok:
        failures += 1
        print(f"FAIL {name}: exit {p.returncode}, stderr: {p.stderr.strip()!r}; wanted {want!r}")
    else:
        print(f"ok   {name}: {p.stderr.strip()}")

good = os.path.join(confdir, "good.ini")
p = subprocess.run([reflex, "check", good], capture_output=True, text=True)
# ... and who rescues whom: rt0 and rt1 each other, never the telemetry thread.
layout_ok = (p.returncode == 0 and "rfx-rt0" in p.stdout and "core 0" in p.stdout
             and "stages: capture pattern" in p.stdout and "rfx-telemetry" in p.stdout
             and "rfx-rt0's stages run on rfx-rt1 when a frame is still not captured 20 us"
             in p.stdout
             and "rfx-rt1's stages run on rfx-rt0 when its frames wait in its ring over 20 us"
             in p.stdout and "rfx-telemetry's stages" not in p.stdout)
if not layout_ok:
    failures += 1
    print(f"FAIL good.ini: exit {p.returncode}\n{p.stdout}{p.stderr}")
else:
    print("ok   good.ini:\n" + p.stdout)
# A thread spinning at SCHED_FIFO: valid, but `check` warns while the
# kernel's RT throttling is on (it takes the core back every period).
import tempfile
with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
    f.write("[thread.rt0]\nstages = capture, pattern, decide, execute\ncore = 0\nwait = spin\n"
            "priority = fifo:50\n[thread.tel]\nstages = telemetry\nwait = park\n")
    spin_fifo = f.name
p = subprocess.run([reflex, "check", spin_fifo], capture_output=True, text=True)
os.unlink(spin_fifo)
try:
    with open("/proc/sys/kernel/sched_rt_runtime_us") as f:
        throttled = int(f.read()) != -1
except OSError:
    throttled = True
warned = "warning: thread rt0: wait = spin at fifo:50 never yields its core" in p.stdout
if p.returncode != 0 or warned != throttled:
    failures += 1
    print(f"FAIL spin at fifo: exit {p.returncode}, warned {warned}, RT throttling {throttled}"
          f"\n{p.stdout}{p.stderr}")
else:
    print(f"ok   spin at fifo: exit 0, warned {warned} (RT throttling {throttled})")
# One critical thread has no partner to rescue it; rescue_us = 0 turns it off.
none = "rescue: none (fewer than two critical threads)" in p.stdout
p = subprocess.run([reflex, "check", good, "--set", "engine.rescue_us=0"], capture_output=True,
                   text=True)
off = p.returncode == 0 and "rescue: off (rescue_us=0)" in p.stdout and "stages run on" not in p.stdout
if not (none and off):
    failures += 1
    print(f"FAIL rescue plan: one critical thread 'none' {none}, rescue_us=0 'off' {off}\n"
          f"{p.stdout}{p.stderr}")
else:
    print("ok   rescue plan: none with one critical thread, off with rescue_us=0")
print(f"{len(files)} bad configs and 1 good: {failures} failed")
sys.exit(1 if failures else 0)
