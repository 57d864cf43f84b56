#!/usr/bin/env python3
"""trace.json read by Chrome DevTools' own trace engine, the parser behind the
Performance panel (npm @paulirish/trace_engine, pinned in devtools/), not by
a reader of ours. A demo with a stalled stage leaves a trace with budget
violation windows and degradation transitions; the engine must show:

- each of the pipeline's thread tracks, under its name, with every slice
  reflex wrote on it;
- every slice in the track's tree: DevTools leaves out a slice that starts
  before the one before it on its thread has ended, by even a rounding
  error, and stacks equal slices; a thread runs one stage call at a time,
  so the tree is one level deep;
- the trace's bounds as the first slice's start and the last one's end;
- no warnings.

A demo where one critical thread often runs the other's stages (rescue)
adds a trace whose rescued slices must be on the track of the thread that
ran them, and every other slice on its stage's own. A full-speed run adds a
trace whose bursts share each stage call: one slice per call, and every
frame in one slice of each stage.

It installs the engine with `npm ci` into CACHE_DIR once (the npm registry);
without node or npm it is skipped (exit 77): tools/run.sh installs both.

usage: test_trace_devtools.py REFLEX INTEROP_DIR CACHE_DIR"""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from scratch import Checks, finish  # noqa: E402

reflex, src, cache = sys.argv[1], os.path.join(sys.argv[2], "devtools"), sys.argv[3]
if not shutil.which("node") or not shutil.which("npm"):
    print("SKIP: node or npm is not installed (tools/run.sh test installs nodejs and npm)")
    sys.exit(77)
work = tempfile.mkdtemp(prefix="rfx-trace-devtools-")
check = Checks()

# The engine, as the lock file pins it.
os.makedirs(cache, exist_ok=True)
lock = os.path.join(cache, "package-lock.json")
installed = os.path.join(cache, "node_modules", "@paulirish", "trace_engine", "package.json")
if not (os.path.exists(installed) and os.path.exists(lock)
        and filecmp.cmp(lock, os.path.join(src, "package-lock.json"), shallow=False)):
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(src, name), cache)
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=cache, capture_output=True,
                       text=True, timeout=600)
    if p.returncode != 0:
        print("FAIL npm ci of the trace engine:\n" + p.stdout[-2000:] + p.stderr[-2000:])
        sys.exit(1)
shutil.copy(os.path.join(src, "read_trace.mjs"), cache)  # resolves the engine from there
with open(installed) as f:
    print(f"DevTools trace engine {json.load(f)['version']}, node "
          f"{subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")


def examine(label, d):
    """The checks above on run bundle d's trace.json; returns its events."""
    trace = os.path.join(d, "trace.json")
    with open(trace) as f:
        t = json.load(f)
    ev = t["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in ev
             if e["ph"] == "M" and e["name"] == "thread_name"}
    ours = {}
    for e in ev:
        if e["ph"] == "X":
            ours.setdefault(names.get(e["tid"], f"tid {e['tid']}"), []).append(e)
    p = subprocess.run(["node", os.path.join(cache, "read_trace.mjs"), trace],
                       capture_output=True, text=True, timeout=300)
    if not check(p.returncode == 0, f"{label}: the DevTools trace engine parses trace.json",
                 p.stderr[-2000:]):
        return ev
    r = json.loads(p.stdout)
    theirs = {x["name"]: x for x in r["threads"]}
    for name, slices in sorted(ours.items()):
        x = theirs.get(name)
        check(x is not None and x["entries"] == len(slices),
              f"{label}: track {name!r}: DevTools shows {x['entries'] if x else 0} of its "
              f"{len(slices)} slices", str(sorted(theirs)))
        if x:
            check(x["in_tree"] == x["entries"] and x["depth"] == 1,
                  f"{label}: track {name!r}: every slice in the track's tree ({x['in_tree']} "
                  f"of {x['entries']}), one level deep (depth {x['depth']})",
                  f"left out: {x['left_out']}")
    check(set(theirs) == set(ours), f"{label}: no other tracks: {sorted(theirs)}")
    xs = [e for s in ours.values() for e in s]
    lo, hi = min(e["ts"] for e in xs), max(e["ts"] + e["dur"] for e in xs)
    b = r["bounds"]
    check(b["min"] == lo and b["max"] == hi,
          f"{label}: bounds {b['min']:.3f}..{b['max']:.3f} us: the first slice's start and "
          f"the last one's end", f"ours {lo}..{hi}")
    check(not r["warnings"], f"{label}: no warnings from the engine", str(r["warnings"]))
    return ev


# At 60 FPS, with violation windows and transitions: decide stalls 40 ms
# every 120th frame from 3 s to 7 s. With trace_slow_us = 1 slow frames
# within their budgets are traced too: frame 0, then each frame twice as
# slow as the last one traced.
d = os.path.join(work, "stall")
p = subprocess.run([reflex, "demo", "--duration", "10", "--quiet", "--out", d,
                    "--set", "telemetry.trace_slow_us=1",
                    "--set", "fault.stall_stage=decide", "--set", "fault.stall_ms=40",
                    "--set", "fault.stall_every=120", "--set", "fault.from_s=3",
                    "--set", "fault.to_s=7"], capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "stall: demo with a stalled decide exits 0", p.stderr[-1000:])
ev = examine("stall", d)
windows = sum(1 for e in ev if e["ph"] == "i" and e["cat"] == "window")
check(windows >= 2 and any(e["ph"] == "i" and e["cat"] == "degradation" for e in ev),
      f"stall: the trace has {windows} windows and the ladder's transitions")
slow = [(e["args"]["frame"], e["args"]["e2e_us"]) for e in ev
        if e["ph"] == "b" and e["args"].get("slow_frame")]
slow_windows = [e for e in ev if e["ph"] == "i" and e["cat"] == "window"
                and e["name"].endswith("frames around a slow frame")]
check(slow and slow[0][0] == 0 and len(slow) == len(slow_windows)
      and all(b[1] > 2 * a[1] for a, b in zip(slow, slow[1:])),
      f"stall: {len(slow_windows)} windows around slow frames, each twice as slow as the "
      f"one before: {slow}")

# Rescue at 1 kHz with rescue_us = 1 and decide's thread parking between
# frames (a futex wake-up takes far over 1 us): rt0 runs rt1's stages for
# about a third of the frames. A rescued stage's slice is on the track of
# the thread that ran it (rescued_from names the stage's own), where DevTools
# must still find every slice disjoint from that thread's own.
d = os.path.join(work, "rescue")
p = subprocess.run([reflex, "demo", "--duration", "3", "--quiet", "--out", d,
                    "--set", "engine.frame_hz=1000", "--set", "engine.rescue_us=1",
                    "--set", "fault.stall_stage=decide", "--set", "fault.stall_ms=3",
                    "--set", "fault.stall_every=500",
                    "--set", "thread.rt0.stages=capture,pattern",
                    "--set", "thread.rt1.stages=decide,execute,telemetry",
                    "--set", "thread.rt1.wait=park"], capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "rescue: demo at 1 kHz with rescue_us=1 exits 0", p.stderr[-1000:])
ev = examine("rescue", d)
track = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
home = {st: tid for tid, name in track.items() for st in name.split(": ", 1)[-1].split()}
slices = [e for e in ev if e["ph"] == "X"]
moved = [e for e in slices if "rescued_from" in e["args"]]
misplaced = [e for e in slices
             if ("rescued_from" in e["args"]) != (e["tid"] != home[e["args"]["stage"]])
             or ("rescued_from" in e["args"]
                 and not track[home[e["args"]["stage"]]].startswith(e["args"]["rescued_from"] + ":"))]
rescued_frames = {e["args"]["frame"] for e in ev if e["ph"] == "b" and "(rescued)" in e["name"]}
check(moved and rescued_frames and not misplaced,
      f"rescue: {len(rescued_frames)} frames marked rescued; {len(moved)} of {len(slices)} "
      f"slices on the rescuer's track, each naming its own thread, and every other slice on "
      f"its own", str(misplaced[:3]))
check(all(e["args"]["frame"] in rescued_frames for e in moved),
      "rescue: every moved slice's first frame is marked rescued")
# At full speed on one thread: bursts of 64 frames share each stage call,
# so a slice holds many frames, the violating one among them; every frame of
# a window is in exactly one slice of each stage.
d = os.path.join(work, "burst")
conf = os.path.join(work, "burst.ini")
with open(conf, "w") as f:
    f.write("[engine]\nframe_hz = 0\nburst = 64\n[source]\nkind = synthetic\n"
            "[strategic]\nworkers = 0\n[thread.rt0]\n"
            "stages = capture, pattern, decide, execute, telemetry\nwait = spin\n"
            # frame 0 (the first of its burst) stalls decide 3 ms: a violation window
            "[fault]\nstall_stage = decide\nstall_ms = 3\nstall_every = 1000000\n")
p = subprocess.run([reflex, "run", conf, "--frames", "300000", "--quiet", "--out", d],
                   capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "burst: a full-speed synthetic run exits 0", p.stderr[-1000:])
ev = examine("burst", d)
with open(os.path.join(d, "summary.json")) as f:
    dropped = json.load(f)["frames"]["dropped_total"]
spans = sum(1 for e in ev if e["ph"] == "b")
per_stage = {}
for e in ev:
    if e["ph"] == "X":
        per_stage.setdefault(e["args"]["stage"], []).append(e["args"]["frames"])
flagged = [e for e in ev if e["ph"] == "X" and e["args"].get("violating_frame")]
check(flagged and all(e["args"]["frames"] > 1 for e in flagged),
      f"burst: the violating frame's {len(flagged)} slices hold its burst "
      f"({[e['args']['frames'] for e in flagged]} frames)", str(flagged[:2]))
check(dropped == 0 and per_stage and all(sum(v) == spans for v in per_stage.values())
      and max(max(v) for v in per_stage.values()) > 1,
      f"burst: {spans} frames in {len(per_stage['capture']) if per_stage else 0} capture "
      f"slices (up to {max(per_stage['capture']) if per_stage else 0} a slice), each frame in "
      f"one slice of each stage", f"dropped {dropped}, frames per stage "
      f"{ {k: sum(v) for k, v in per_stage.items()} }")

finish(check.failures, work, "trace_devtools: ")
