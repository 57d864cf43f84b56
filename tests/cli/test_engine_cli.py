#!/usr/bin/env python3
"""End to end through the reflex binary: the demo's bundle, SIGINT drain,
drop accounting, 'reflex run' errors, and the UDP source/sink driven by a
separate process (this one) playing the demo game over 127.0.0.1."""
import atexit
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from scratch import finish

reflex = sys.argv[1]
work = tempfile.mkdtemp(prefix="rfx-cli-")
failures = 0


def check(ok, what, detail=""):
    global failures
    if ok:
        print(f"ok   {what}")
    else:
        failures += 1
        print(f"FAIL {what} {detail}")


def load_summary(d):
    with open(os.path.join(d, "summary.json")) as f:
        return json.load(f)


def identity_holds(s):
    """captured = executed + dropped (all reasons) + in flight, with in flight 0."""
    fr = s["frames"]
    return (fr["captured"] == fr["executed"] + sum(fr["dropped"].values()) + fr["in_flight"]
            and fr["in_flight"] == 0)


def check_bundle(d, label, stages=("capture", "pattern", "decide", "execute", "telemetry")):
    s = load_summary(d)
    for key in ("reflex_version", "duration_s", "frame_hz", "frames", "stages", "e2e", "cache",
                "strategic", "degradation", "alerts", "threads"):
        check(key in s, f"{label}: summary.json has '{key}'")
    if s["frame_hz"] > 0 and s["first_frame_ms"] >= 0:
        # Frame 0 is due after the threads are released, so that starting
        # them is not charged to its latency; it is captured when due.
        check(0 < s["threads_released_ms"] < s["first_frame_due_ms"] <= s["first_frame_ms"],
              f"{label}: threads released at {s['threads_released_ms']} ms, frame 0 due at"
              f" {s['first_frame_due_ms']} ms, captured at {s['first_frame_ms']} ms")
    fr = s["frames"]
    dropped = sum(fr["dropped"].values())
    check(fr["captured"] == fr["executed"] + dropped + fr["in_flight"] and fr["in_flight"] == 0,
          f"{label}: captured {fr['captured']} = executed {fr['executed']} + dropped {dropped}"
          f" + in flight {fr['in_flight']}, in flight 0")
    for st in stages:
        check(st in s["stages"] and s["stages"][st]["count"] > 0, f"{label}: stage {st} recorded")
        for k in ("p50_ns", "p95_ns", "p99_ns", "p999_ns", "max_ns", "budget_p99_ns", "violations"):
            check(k in s["stages"][st], f"{label}: stages.{st}.{k}")
        check(os.path.getsize(os.path.join(d, st + ".hgrm")) > 0, f"{label}: {st}.hgrm written")
    check(os.path.getsize(os.path.join(d, "e2e.hgrm")) > 0, f"{label}: e2e.hgrm written")
    for name in ("latency.svg", "metrics.prom", "trace.json"):
        check(os.path.getsize(os.path.join(d, name)) > 0, f"{label}: {name} written")
    crit = [t for t in s["threads"] if t["critical"]]
    check(s.get("allocation_tracking") is True, f"{label}: jemalloc allocation counters active")
    check(crit and all(t["allocated_bytes_after_start"] == 0 for t in crit),
          f"{label}: 0 bytes allocated on critical threads after start",
          str([(t["name"], t["allocated_bytes_after_start"]) for t in crit]))
    check(crit and all(t["page_faults_after_start"] == 0 for t in crit),
          f"{label}: 0 page faults on critical threads after start",
          str([(t["name"], t["page_faults_after_start"]) for t in crit]))
    p = subprocess.run([reflex, "hist", os.path.join(d, "latency.hlog"), "--tag", "e2e"],
                       capture_output=True, text=True)
    check(p.returncode == 0 and "#[Mean" in p.stdout, f"{label}: latency.hlog e2e decodes")
    return s


# 1. The demo: bundle complete, identity, zero allocations, the cache learns.
d = os.path.join(work, "demo")
t0 = time.time()
proc = subprocess.Popen([reflex, "demo", "--duration", "12", "--out", d, "--quiet"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
# While it runs, the machine's CPU latency limit is 0 (engine.cpu_latency_us
# = auto with critical threads that sleep): idle CPUs poll. The device is
# root's; other tests running beside this one may hold 0 too, so only the
# value during the run is checked, not the one after.
time.sleep(3)
qos = None
if os.geteuid() == 0:
    with open("/dev/cpu_dma_latency", "rb") as f:
        qos = struct.unpack("i", f.read(4))[0]
out, err = proc.communicate(timeout=120)
p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
check(p.returncode == 0, "demo exits 0", p.stderr)
check("demo: score" in p.stdout and "e2e" in p.stdout and "cache: hit rate" in p.stdout,
      "demo prints score, the stage table and the cache hit rate", p.stdout)
s = check_bundle(d, "demo")
tl, fr = s["stages"]["telemetry"], s["frames"]
check(tl["count"] == fr["captured"] - fr["dropped"]["pool_exhausted"] > 0
      and tl["queue_wait"]["count"] == tl["count"] and tl["budget_p99_ns"] == 500000
      and re.search(r"^ +telemetry +%d " % tl["count"], p.stdout, re.M),
      f"demo: the telemetry stage timed its own calls for all {tl['count']} frames it took "
      f"(captured {fr['captured']}), p99 {tl['p99_ns']} ns against its 500-us budget, "
      "and has its row in the table", p.stdout)


def planned_hit_rates(s):
    """The hit rate of each 1-s interval while the planner ran, and when it
    stopped: from SEVERE on (by default cache-only, no planning) the game
    moves on and the cache does not, so a host whose stalls push the ladder
    there (e2e p99 of tens of ms) ends the cache's learning, not the bot's."""
    rates = s["cache"]["hit_rate_by_interval"]
    stop = next((t["t_s"] for t in s["degradation"]["transitions"]
                 if t["to"] in ("SEVERE", "CRITICAL")), None)
    n = len(rates) if stop is None else int(stop)  # intervals that ended by then
    return [x for x in rates[:n] if x is not None], stop


hr, stop = planned_hit_rates(s)
if len(hr) < 6:
    # Too few planned intervals to compare: once more, as a new run.
    print(f"note demo: the ladder stopped planning at {stop} s "
          f"({[t['cause'] for t in s['degradation']['transitions']]}); running the demo again")
    d_again = os.path.join(work, "demo-again")
    p = subprocess.run([reflex, "demo", "--duration", "12", "--out", d_again, "--quiet"],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "demo (again) exits 0", p.stderr)
    hr, stop = planned_hit_rates(load_summary(d_again))
third = max(1, len(hr) // 3)
first, last = sum(hr[:third]) / third, sum(hr[-third:]) / third
check(len(hr) >= 6 and last > first,
      f"demo: hit rate in the last third ({last:.3f}) > the first third ({first:.3f}) of "
      f"{len(hr)} intervals" + (f" (planning stopped at {stop} s)" if stop is not None else ""),
      str(hr))
check(s["cache"]["publications"] >= 3, f"demo: {s['cache']['publications']} snapshots published")
# A cold start misses by construction until the first snapshot: the hit-rate
# alert is armed only from the first interval that begins with one.
cold = [a for a in s["alerts"] if a["type"] == "cache_hit_rate" and a["t_s"] < 1.5]
check(not cold, f"demo: no cache_hit_rate alert for the cold first interval (hit rate "
      f"{s['cache']['hit_rate_by_interval'][0]})", str(cold))
check("score" in s.get("demo", {}), "demo: summary.json has demo.score")
cl = s.get("cpu_latency", {})
if qos is None:
    print("skip demo: CPU latency request (not root)")
else:
    check(qos == 0 and cl.get("setting") == "auto" and cl.get("held_us") == 0,
          f"demo: CPU latency limit {qos} us during the run, summary.json says {cl}")
# Rescue: on two CPUs rt0 and rt1 cover for each other; summary.json names
# who and counts what the report's rescue line says.
m = re.search(r"^rescue: late over 20 us, rfx-rt0's stages ran on rfx-rt1 for (\d+) frames?, "
              r"rfx-rt1's stages ran on rfx-rt0 for (\d+) frames?$", out, re.M)  # the first run's
by = {t["name"]: (t["rescuable"], t["rescued_by"], t["rescued_frames"]) for t in s["threads"]}
two_cpus = len(os.sched_getaffinity(0)) == 2  # the auto layout: rt0 and rt1
if two_cpus:
    check(m and by.get("rfx-rt0") == (True, "rfx-rt1", int(m[1]))
          and by.get("rfx-rt1") == (True, "rfx-rt0", int(m[2])),
          f"demo: the report's rescue line and summary.json agree: {by}", out[-800:])
else:
    print(f"skip demo: rescue pairs (a {len(os.sched_getaffinity(0))}-CPU layout)")
rt0 = next(t for t in s["threads"] if t["name"] == "rfx-rt0")
check(rt0["lead_max_used_us"] == 200.0 and rt0["wake_late_peak_us"] > 0,
      f"demo: the source thread led frames by lead_us (200 us; its wake-ups came up to"
      f" {rt0['wake_late_peak_us']} us late)", str(rt0))
# Adaptive lead: from lead_us 0, each critical thread's lead follows its own
# wake-up lateness (always > 0), never beyond lead_max_us.
d_lead = os.path.join(work, "lead")
p = subprocess.run([reflex, "demo", "--duration", "3", "--out", d_lead, "--quiet", "--set",
                    "engine.lead_us=0", "--set", "engine.lead_max_us=3000",
                    "--set", "engine.cpu_latency_us=off"],
                   capture_output=True, text=True, timeout=60)
s_lead = load_summary(d_lead) if p.returncode == 0 else {"threads": []}
leads = [(t["name"], t["lead_max_used_us"], t["wake_late_peak_us"]) for t in s_lead["threads"]
         if t["critical"]]
check(p.returncode == 0 and leads and all(0 < x <= 3000 for _, x, _ in leads),
      f"adaptive lead: each critical thread's lead rose from 0 within lead_max_us: {leads}",
      p.stderr)
cl = s_lead.get("cpu_latency", {})
check(cl.get("setting") == "off" and cl.get("held_us") is None and cl.get("error") == "",
      f"cpu_latency_us=off: no request held ({cl})")
# latency.svg: well-formed (xmllint), renders (rsvg-convert), every stage and
# e2e drawn and labelled, budgets drawn; 'reflex plot' makes the same from the hlog.
svg = os.path.join(d, "latency.svg")
p = subprocess.run(["xmllint", "--noout", svg], capture_output=True, text=True)
check(p.returncode == 0, "demo: latency.svg is well-formed XML (xmllint)", p.stderr)
png = os.path.join(d, "latency.png")
p = subprocess.run(["rsvg-convert", "-o", png, svg], capture_output=True, text=True)
with open(png, "rb") as f:
    head = f.read(24)
w, h = struct.unpack(">II", head[16:24]) if len(head) == 24 else (0, 0)
check(p.returncode == 0 and head[:8] == b"\x89PNG\r\n\x1a\n" and w >= 900 and h >= 500,
      f"demo: latency.svg renders to a {w}x{h} PNG (rsvg-convert)", p.stderr)
with open(svg) as f:
    text = f.read()
labels = re.findall(r'font-weight="bold" fill="#[0-9A-Fa-f]{6}">([a-z0-9]+)</text>', text)
check(sorted(labels) == sorted(["capture", "pattern", "decide", "execute", "telemetry", "e2e"]),
      f"demo: a labelled curve per stage and e2e ({labels})")
check(text.count("stroke-dasharray") >= 3 and "budget: capture, decide, execute" in text
      and "budget: e2e" in text, "demo: budget staircases drawn and named")
p = subprocess.run([reflex, "plot", os.path.join(d, "latency.hlog"), "-o",
                    os.path.join(d, "plot.svg"), "--budget", "decide=250,500,1000"],
                   capture_output=True, text=True)
p2 = subprocess.run(["xmllint", "--noout", os.path.join(d, "plot.svg")], capture_output=True)
check(p.returncode == 0 and p2.returncode == 0, "reflex plot FILE.hlog writes a valid SVG",
      p.stderr)
p = subprocess.run([reflex, "plot", os.path.join(d, "summary.json")], capture_output=True,
                   text=True)
check(p.returncode == 2 and "line 1" in p.stderr, "reflex plot on a non-hlog file: exit 2",
      p.stderr)
for bad, want in ((["--budget", "decide=1,2"], "is not TAG=P50,P95,P99"),
                  (["--budget", "nosuch=1,2,3"], "no such tag")):
    p = subprocess.run([reflex, "plot", os.path.join(d, "latency.hlog")] + bad,
                       capture_output=True, text=True)
    check(p.returncode == 2 and want in p.stderr, f"reflex plot {' '.join(bad)}: exit 2",
          p.stderr)

# 2. SIGINT drains in-flight frames and leaves a valid bundle.
def long_demo(d, *args):
    """A demo that runs until it is stopped, its bundle in d."""
    return subprocess.Popen([reflex, "demo", "--duration", "600", "--out", d, "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped(proc, label, timeout=30):
    """The stderr of a demo once it has ended, or None (checked as a
    failure) if it has not within `timeout` s."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        check(False, f"{label}: reflex did not stop within {timeout} s")
        return None


d = os.path.join(work, "sigint")
proc = long_demo(d)
time.sleep(3)
proc.send_signal(signal.SIGINT)
try:
    out, err = proc.communicate(timeout=20)
    check(proc.returncode == 0, "SIGINT: exit 0", err)
    s = check_bundle(d, "sigint")
    check(s["duration_s"] < 10, f"SIGINT: stopped after {s['duration_s']:.1f} s")
except subprocess.TimeoutExpired:
    proc.kill()
    check(False, "SIGINT: reflex did not stop within 20 s")

# 2b. SIGINT before the engine exists (while its config is read): the
#     engine is stopped as soon as it is made, and the run still ends in a
#     valid bundle. The config is a FIFO, so the signal lands after reflex has
#     opened it (its handler is in place by then) and before the engine runs.
d = os.path.join(work, "sigint-early")
fifo = os.path.join(work, "early.ini")
os.mkfifo(fifo)
proc = subprocess.Popen([reflex, "run", fifo, "--duration", "600", "--out", d, "--quiet"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
with open(fifo, "w") as f:  # returns once reflex has opened it
    f.write("[engine]\nframe_hz = 60\n")
proc.send_signal(signal.SIGINT)
try:
    out, err = proc.communicate(timeout=30)
    check(proc.returncode == 0, f"early SIGINT: exit {proc.returncode}", err)
    if proc.returncode == 0:
        s = check_bundle(d, "early SIGINT", stages=())
        check(s["duration_s"] < 5 and s["frames"]["captured"] <= 2,
              f"early SIGINT: stopped at once ({s['frames']['captured']} frames,"
              f" {s['duration_s']:.3f} s)")
except subprocess.TimeoutExpired:
    proc.kill()
    check(False, "early SIGINT: reflex did not stop within 30 s")

# 2c. A stage stuck in a call (decide sleeps 60 s from frame 0, as a hung
#     device or a deadlock would) holds the drain the first SIGINT starts;
#     a second SIGINT ends the process at once, by that signal, saying the
#     bundle is not written. Without a terminal the first says nothing.
d = os.path.join(work, "sigint-twice")
proc = long_demo(d, "--set", "fault.stall_stage=decide", "--set", "fault.stall_ms=60000",
                 "--set", "fault.stall_every=100", "--set", "fault.stall_sleep=true")
time.sleep(2)
proc.send_signal(signal.SIGINT)
time.sleep(1)
still = proc.poll() is None
t_second = time.monotonic()
proc.send_signal(signal.SIGINT)
try:
    out, err = proc.communicate(timeout=10)
    took = time.monotonic() - t_second
    check(still, "second SIGINT: the first left the stuck drain running")
    check(proc.returncode == -signal.SIGINT and took < 5 and
          "second signal: quitting without draining; the bundle is not written" in err and
          "stopping: draining" not in err,
          f"second SIGINT: ended by SIGINT {took:.2f} s later (exit {proc.returncode})", err)
except subprocess.TimeoutExpired:
    proc.kill()
    proc.communicate()
    check(False, "second SIGINT: reflex was still draining 10 s after it")

# 2d. One request delivered twice: timeout(1) signals the command and then
#     its process group, microseconds apart. A repeat within 0.25 s of the
#     first is the same request: the run drains and writes its bundle.
d = os.path.join(work, "sigint-repeat")
proc = long_demo(d)
time.sleep(2)
proc.send_signal(signal.SIGINT)
time.sleep(0.02)  # after the first's handler ran: the kernel cannot merge them
proc.send_signal(signal.SIGINT)
err = stopped(proc, "SIGINT repeated")
if err is not None:
    check(proc.returncode == 0 and "second signal" not in err,
          f"SIGINT repeated after 20 ms: drained as one request (exit {proc.returncode})", err)
    if proc.returncode == 0:
        check_bundle(d, "SIGINT repeated")

# 2e. A directory is one run's: a second run into it while the first runs
#     is refused (exit 2, named) before it touches a file, and the first's
#     bundle is whole.
d = os.path.join(work, "in-use")
proc = long_demo(d)
time.sleep(2)
second = subprocess.run([reflex, "demo", "--duration", "1", "--out", d, "--quiet"],
                        capture_output=True, text=True, timeout=60)
check(second.returncode == 2 and
      f"out dir {d} is in use by another run (its latency.hlog is locked)" in second.stderr,
      f"a second run into a directory in use: exit {second.returncode}, named", second.stderr)
proc.send_signal(signal.SIGINT)
err = stopped(proc, "the first run")
if err is not None:
    check(proc.returncode == 0, f"the first run, stopped: exit {proc.returncode}", err)
    if proc.returncode == 0:
        s = check_bundle(d, "the run the second was refused beside")
        check(s["duration_s"] > 1.5, f"its summary is its own ({s['duration_s']:.1f} s)")

# 3. Drops are counted by reason: a drop-newest ring too small for the load.
def run_ini(name, ini, *args):
    """reflex run on a config written from `ini`, out dir work/NAME; (dir, result)."""
    d, cfg = os.path.join(work, name), os.path.join(work, name + ".ini")
    with open(cfg, "w") as f:
        f.write(ini)
    return d, subprocess.run([reflex, "run", cfg, *args, "--out", d, "--quiet"],
                             capture_output=True, text=True, timeout=120)


d, p = run_ini("drops", "[engine]\nframe_hz = 0\nmax_frames = 200000\npool_frames = 4096\n"
               "[ring]\ncapacity = 8\noverflow = drop-newest\n"
               "[source]\nkind = synthetic\nwork_ns = 0, 0, 0, 2000\n[sink]\nkind = null\n")
check(p.returncode == 0, "synthetic run with drops exits 0", p.stderr)
s = check_bundle(d, "drops")
check(s["frames"]["dropped"]["ring_full"] > 0 and s["frames"]["captured"] == 200000,
      f"drops: {s['frames']['dropped']['ring_full']} ring_full drops of 200000 frames counted")

# 3b. A stage that drops frames, with a pool so small that every frame is
#     recycled many times: a later stage records exactly the frames that
#     reached it (a recycled frame's last-lap stage times must not count).
d, p = run_ini("recycled", "[engine]\nframe_hz = 500\npool_frames = 64\n"
               "[fault]\nfail_stage = pattern\nfail_prob = 0.2\n"
               "[degrade]\nenabled = false\n", "--duration", "3")
check(p.returncode == 0, "recycled: run exits 0", p.stderr)
s = load_summary(d)
fr, st = s["frames"], s["stages"]
# A frame the source found no free slot for (pool_exhausted: telemetry fell
# 64 frames behind, as when the machine is busy) is captured but never enters.
entered = fr["captured"] - fr["dropped"]["pool_exhausted"]
reached = entered - fr["dropped"]["stage"]
check(fr["dropped"]["stage"] > 0 and fr["captured"] > 64 * 10 and
      st["pattern"]["count"] == entered and
      st["decide"]["count"] == reached and st["execute"]["count"] == reached,
      f"recycled: {fr['captured']} frames through a pool of 64 ({entered} found a slot),"
      f" {fr['dropped']['stage']} dropped at pattern; pattern recorded {st['pattern']['count']},"
      f" decide {st['decide']['count']}, execute {st['execute']['count']}, {reached} reached them")

# 3c. One critical thread pinned to core 0: every off-path thread (the
#     telemetry thread, planner, watchdog, reporter) is kept off core 0.
if os.cpu_count() and os.cpu_count() >= 2:
    d = os.path.join(work, "offpath")
    cfg = os.path.join(work, "offpath.ini")
    with open(cfg, "w") as f:
        f.write("[thread.rt0]\nstages = capture, pattern, decide, execute\ncore = 0\n"
                "wait = spin\n[thread.tel]\nstages = telemetry\nwait = park\n")
    proc = subprocess.Popen([reflex, "run", cfg, "--duration", "3", "--out", d, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    masks = {}
    for tid in os.listdir(f"/proc/{proc.pid}/task"):
        try:
            with open(f"/proc/{proc.pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{proc.pid}/task/{tid}/status") as f:
                masks[name] = next(l.split()[1] for l in f if l.startswith("Cpus_allowed_list"))
        except OSError:
            pass
    err = proc.communicate(timeout=60)[1]
    off = {n: m for n, m in masks.items() if n.startswith("rfx-") and n != "rfx-rt0"}
    check(proc.returncode == 0 and masks.get("rfx-rt0") == "0" and
          {"rfx-tel", "rfx-plan0", "rfx-watchdog", "rfx-report"} <= set(off) and
          all("0" not in m.replace("-", ",").split(",") for m in off.values()),
          f"off-path threads off the critical core: {masks}", err)
    # wait = spin: the paced source spins between frames and never sleeps,
    # so it records no timed wake-up and uses no lead.
    if proc.returncode == 0:
        rt0 = next(t for t in load_summary(d)["threads"] if t["name"] == "rfx-rt0")
        check(rt0["wake_late_peak_us"] == 0 and rt0["lead_max_used_us"] == 0,
              f"spin: the source thread never slept (wake-up peak {rt0['wake_late_peak_us']} us,"
              f" lead used {rt0['lead_max_used_us']} us)", str(rt0))

good = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "good.ini")

# 3c'. No layout in the config and a process narrowed to one CPU (taskset,
#      or a container's cpuset): every thread is laid out on that CPU, none
#      pinned where the kernel would refuse it; 'latency' is refused, exit 2.
if os.cpu_count() and os.cpu_count() >= 2:
    last = max(os.sched_getaffinity(0))
    narrow = lambda: os.sched_setaffinity(0, {last})
    d = os.path.join(work, "narrowed")
    p = subprocess.run([reflex, "demo", "--duration", "2", "--out", d, "--quiet"],
                       capture_output=True, text=True, timeout=60, preexec_fn=narrow)
    check(p.returncode == 0, f"narrowed to CPU {last}: demo exits 0", p.stderr)
    if p.returncode == 0:
        s = check_bundle(d, "narrowed")
        cores = {t["name"]: t["core"] for t in s["threads"]}
        check(cores and all(c == last for c in cores.values()),
              f"narrowed to CPU {last}: every thread laid out on it: {cores}")
    p = subprocess.run([reflex, "demo", "--duration", "1", "--out", d + "-lat", "--quiet",
                        "--set", "engine.layout=latency"], capture_output=True, text=True,
                       timeout=60, preexec_fn=narrow)
    check(p.returncode == 2 and f"may run on 1 of the" in p.stderr and f"CPU {last}" in p.stderr,
          f"narrowed to CPU {last}: layout=latency refused, exit {p.returncode}", p.stderr)
    p = subprocess.run([reflex, "check", good], capture_output=True, text=True, timeout=30,
                       preexec_fn=narrow)
    check(p.returncode == 0 and f"this process may use {last}" in p.stdout and
          (last == 0 or "thread.rt0: core 0 is not among the CPUs this process may use"
           in p.stderr),
          f"narrowed to CPU {last}: check names the CPUs and warns of a core outside them",
          p.stdout + p.stderr)

# 3c''. Real-time priorities a user may not have: run as nobody (no
#       CAP_SYS_NICE, RLIMIT_RTPRIO 0) with a fifo critical thread and a fifo
#       watchdog. BRIEF section 4: a warning and a fallback, never a crash.
as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
if os.geteuid() == 0 and os.path.exists("/usr/bin/setpriv") and subprocess.run(
        as_nobody + [reflex, "--version"], capture_output=True).returncode != 0:
    print(f"skip: priority fallback as nobody: nobody cannot run {reflex} (its directories"
          " are closed to other users)")
elif os.geteuid() == 0 and os.path.exists("/usr/bin/setpriv"):
    d = tempfile.mkdtemp(prefix="rfx-nobody-")
    os.chmod(d, 0o777)
    cfg = os.path.join(d, "fifo.ini")
    with open(cfg, "w") as f:
        f.write("[thread.rt0]\nstages = capture, pattern, decide, execute\npriority = fifo:10\n"
                "[thread.tel]\nstages = telemetry\nwait = park\n"
                "[watchdog]\npriority = fifo:1\n")
    os.chmod(cfg, 0o644)
    p = subprocess.run(as_nobody + [reflex, "run", cfg, "--duration", "1", "--quiet",
                                    "--out", os.path.join(d, "b")],
                       capture_output=True, text=True, timeout=60, cwd=d)
    check(p.returncode == 0 and "thread rt0" in p.stderr and "fifo:10 not permitted" in p.stderr
          and "watchdog: fifo:1 not permitted" in p.stderr,
          f"as nobody: fifo:10 thread and fifo:1 watchdog fall back with warnings, exit"
          f" {p.returncode}", p.stderr)
    if p.returncode == 0:
        s = check_bundle(os.path.join(d, "b"), "as nobody")
        w = s["watchdog"]
        check(w["priority"] == "fifo:1" and w["priority_in_effect"] == "normal",
              f"as nobody: watchdog priority {w['priority']}, in effect {w['priority_in_effect']}")
    shutil.rmtree(d, ignore_errors=True)
else:
    print("skip: priority fallback as nobody needs root and setpriv")

# 3c'''. A CPU limit (a container's --cpus 0.5, made here as a cgroup v1
#        cpu.cfs_quota_us): the auto layout takes one CPU's worth, the
#        latency layout is refused (its spinning thread alone would spend
#        the quota), and a config that spins anyway is warned at start, and
#        the kernel's throttling is reported at the end and in summary.json.
cg = f"/sys/fs/cgroup/cpu/rfx-test-{os.getpid()}"
try:
    os.mkdir(cg)
    with open(cg + "/cpu.cfs_period_us", "w") as f:
        f.write("100000")
    with open(cg + "/cpu.cfs_quota_us", "w") as f:
        f.write("50000")
except OSError as ex:
    cg = None
    print(f"skip: CPU limit: cannot make a cgroup v1 cpu group here ({ex})")
if cg:
    atexit.register(lambda: os.path.isdir(cg) and os.rmdir(cg))

    def into_cg():
        with open(cg + "/tasks", "w") as f:
            f.write(str(os.getpid()))
    def in_cg(args, **kw):
        return subprocess.run([reflex, *args], capture_output=True, text=True, timeout=60,
                              preexec_fn=into_cg, **kw)
    d = os.path.join(work, "quota-auto")
    p = in_cg(["demo", "--duration", "2", "--out", d, "--quiet"])
    check(p.returncode == 0 and "spins" not in p.stderr, "CPU limit 0.5: demo exits 0, no warning",
          p.stderr)
    if p.returncode == 0:
        s = load_summary(d)
        th = [(t["name"], t["stages"]) for t in s["threads"]]
        q = s["cpu_quota"]
        check(len(th) == 1 and len(th[0][1]) == 5 and q["cpus"] == 0.5 and q["cgroup"] == cg,
              f"CPU limit 0.5: the auto layout is one thread: {th}; cpu_quota {q}")
    p = in_cg(["demo", "--duration", "1", "--out", d + "-lat", "--quiet",
               "--set", "engine.layout=latency"])
    check(p.returncode == 2 and "cgroup allows 0.50" in p.stderr and cg in p.stderr,
          f"CPU limit 0.5: layout=latency refused, exit {p.returncode}", p.stderr)
    spin = os.path.join(work, "spin.ini")
    with open(spin, "w") as f:
        f.write("[thread.rt0]\nstages = capture, pattern, decide, execute\nwait = spin\n"
                "[thread.tel]\nstages = telemetry\nwait = park\n")
    d = os.path.join(work, "quota-spin")
    p = in_cg(["run", spin, "--duration", "2", "--out", d, "--quiet"])
    check(p.returncode == 0 and "cgroup allows 0.50 CPUs" in p.stderr and
          "1 thread spins" in p.stderr, "CPU limit 0.5: a spinning thread is warned of", p.stderr)
    check("cpu quota: the kernel throttled this process in" in p.stdout,
          "CPU limit 0.5: the report names the throttling", p.stdout)
    if p.returncode == 0:
        q = load_summary(d)["cpu_quota"]
        check(q["cpus"] == 0.5 and q["cgroup"] == cg and q["throttled_periods"] > 0 and
              q["periods"] >= q["throttled_periods"] and q["throttled_ms"] > 0,
              f"CPU limit 0.5: summary.json cpu_quota {q}")
    p = in_cg(["check", spin])
    check(p.returncode == 0 and f"its cgroup allows 0.50 CPUs (50000 us every 100000 us, {cg})"
          in p.stdout and "1 thread spins" in p.stdout,
          "CPU limit 0.5: check names the limit and warns of the spinning thread", p.stdout)

# 3c''''. A memory limit (a container's --memory 256m, made here as a cgroup
#         v1 memory group under this process's own): a frame pool (or miss
#         queue) larger than the room left is refused by name before
#         anything is allocated, instead of the OOM killer ending the process as it
#         writes the pool through; a pool that fits runs.
def v1_memory_dir():
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split() for l in f]
    point = next((m[4] for m in mounts if "-" in m and m[m.index("-") + 1] == "cgroup"
                  and "memory" in m[-1].split(",")), None)
    with open("/proc/self/cgroup") as f:
        own = next((l.strip().split(":", 2)[2] for l in f
                    if "memory" in l.split(":")[1].split(",")), None)
    return point and own is not None and point + own.rstrip("/")


mg = None
try:
    base = v1_memory_dir()
    if not base:
        raise OSError("no cgroup v1 memory hierarchy")
    mg = f"{base}/rfx-mem-{os.getpid()}"
    os.mkdir(mg)
    with open(mg + "/memory.limit_in_bytes", "w") as f:
        f.write(str(256 << 20))
except OSError as ex:
    print(f"skip: memory limit: cannot make a cgroup v1 memory group here ({ex})")
    mg = None
if mg:
    atexit.register(lambda: os.path.isdir(mg) and os.rmdir(mg))

    def in_mg(args):
        def into_mg():
            with open(mg + "/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        return subprocess.run([reflex, *args], capture_output=True, text=True, timeout=60,
                              preexec_fn=into_mg)
    empty = os.path.join(work, "empty.ini")
    open(empty, "w").close()
    p = in_mg(["check", empty, "--set", "engine.payload_bytes=1048576"])
    check(p.returncode == 2 and "engine.pool_frames: the engine would hold 1.00 GiB (frame pool "
          "1.00 GiB: 1024 frames of 1048704 B" in p.stderr and f"(the cgroup {mg})" in p.stderr,
          f"memory limit 256 MiB: check refuses a 1 GiB pool, exit {p.returncode}", p.stderr)
    p = in_mg(["check", empty, "--set", "cache.miss_queue=8388608"])
    check(p.returncode == 2 and "cache.miss_queue: the engine would hold" in p.stderr and
          "miss queue 512.0 MiB" in p.stderr,
          f"memory limit 256 MiB: check refuses a 512 MiB miss queue by its key, exit "
          f"{p.returncode}", p.stderr)
    p = in_mg(["demo", "--duration", "1", "--quiet", "--out", os.path.join(work, "mem-big"),
               "--set", "engine.payload_bytes=1048576"])
    check(p.returncode == 2 and f"(the cgroup {mg})" in p.stderr,
          f"memory limit 256 MiB: the demo with a 1 GiB pool exits 2, not killed "
          f"(exit {p.returncode})", p.stderr)
    d = os.path.join(work, "mem-fits")
    p = in_mg(["demo", "--duration", "1", "--quiet", "--out", d,
               "--set", "engine.payload_bytes=65536"])
    check(p.returncode == 0 and os.path.exists(os.path.join(d, "summary.json")),
          f"memory limit 256 MiB: the demo with a 64 MiB pool runs, exit {p.returncode}",
          p.stderr)

# 3c5. A bundle directory on a disk that fills (a 64 KiB tmpfs): every file
#      is tried, summary.json first; the ones that fit are whole, the others
#      are named with the write's own error (ENOSPC) and absent (a previous
#      run's file of that name too), no temporary file is left, the exit is
#      1, and the report does not claim a full bundle.
full = os.path.join(work, "fulldisk")
os.mkdir(full)


def mount_tmpfs(size, label):
    """A tmpfs of `size` on `full`; False (the block skipped) where none can be mounted."""
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", full],
                       capture_output=True, text=True)
    if m.returncode != 0:
        print(f"skip: {label}: cannot mount a tmpfs here ({m.stderr.strip()})")
    return m.returncode == 0


if mount_tmpfs("64k", "full disk"):
    d = os.path.join(full, "out")
    os.mkdir(d)
    with open(os.path.join(d, "trace.json"), "w") as f:  # a previous run's
        f.write("{}\n")
    p = subprocess.run([reflex, "demo", "--duration", "3", "--quiet", "--out", d],
                       capture_output=True, text=True, timeout=60)
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    check(p.returncode == 1 and f"writing the bundle: {d}/" in p.stderr and
          "No space left on device" in p.stderr and "Input/output error" not in p.stderr,
          f"full disk: exit {p.returncode}, the files that did not fit named with ENOSPC",
          p.stderr)
    check("summary.json" in names and identity_holds(load_summary(d)),
          f"full disk: summary.json written first, whole: {names}")
    check(not [n for n in names if n.endswith(".tmp")],
          f"full disk: no temporary file left: {names}")
    check("trace.json" not in names,
          f"full disk: the previous run's trace.json, not rewritten, is gone: {names}")
    missing = [n for n in ("trace.json", "latency.svg", "metrics.prom") if n not in names]
    check(missing and all(f"{n}: No space left on device" in p.stderr for n in missing) and
          "is incomplete" in p.stdout and "(summary.json, latency.hlog" not in p.stdout,
          f"full disk: the missing files {missing} are the ones named; the report says the "
          f"bundle is incomplete", p.stdout[-300:] + p.stderr)
    for n in names:
        if n.endswith(".hgrm"):
            with open(os.path.join(d, n)) as f:
                text = f.read()
            check("#[Max" in text, f"full disk: {n} is whole", text[-200:])
    subprocess.run(["umount", full])

def reservation(pid, d):
    """Bytes allocated to the space process pid keeps in d for summary.json:
    a file it holds open with no name (O_TMPFILE), which /proc shows as
    'D/#INODE (deleted)'; 0 when there is none."""
    fds = f"/proc/{pid}/fd"
    for _ in range(100):  # it is made before the first frame
        for n in os.listdir(fds) if os.path.isdir(fds) else []:
            try:
                target = os.readlink(os.path.join(fds, n))
                if target.startswith(d + "/#") and target.endswith(" (deleted)"):
                    return os.stat(os.path.join(fds, n)).st_blocks * 512
            except OSError:
                pass
        time.sleep(0.05)
    return 0


# 3c5b. A disk that fills during the run (another program takes every free
#       byte): summary.json still fits, in the space kept for it at the
#       start.
if mount_tmpfs("4m", "disk filling up"):
    d = os.path.join(full, "out")
    proc = subprocess.Popen([reflex, "demo", "--duration", "60", "--quiet", "--out", d],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reserved = reservation(proc.pid, d) >= 2 << 20
    time.sleep(1)
    with open(os.path.join(full, "filler"), "wb", buffering=0) as f:  # every free byte
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    names = sorted(os.listdir(d))
    check(reserved, f"disk filling up: 2 MiB kept for summary.json at the start ({names})")
    # Written first, into the space kept for it, whose unused part is then
    # freed: the rest of a short run's bundle fits there too (exit 0); a
    # file that does not is named with ENOSPC (exit 1).
    check("summary.json" in names and identity_holds(load_summary(d)) and
          "summary.json:" not in err and
          (proc.returncode == 0 or proc.returncode == 1 and "No space left on device" in err),
          f"disk filling up: summary.json written whole from the space kept for it (exit "
          f"{proc.returncode}, {len(names)} files)", err[-600:])
    check(not [n for n in names if n.endswith(".tmp")],
          f"disk filling up: no temporary file left: {names}")
    subprocess.run(["umount", full])

# 3c5c. SIGKILL mid-run: the space kept for summary.json has no name, so it
#       goes with the process (a named DIR/summary.json.tmp would stay, 2 MiB).
d = os.path.join(work, "killed")
proc = subprocess.Popen([reflex, "demo", "--duration", "60", "--quiet", "--out", d],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
held = reservation(proc.pid, d)
time.sleep(0.5)
proc.kill()
proc.communicate(timeout=30)
names = sorted(os.listdir(d))
check(held >= 2 << 20 and proc.returncode == -signal.SIGKILL and names == ["latency.hlog"],
      f"SIGKILL: {held >> 20} MiB kept while running; after the kill the directory holds "
      f"{names}, no temporary file")

# 3c6. The flight recorder off (telemetry.trace_frames = 0): no trace.json,
#      not even one a previous run left in the directory.
d = os.path.join(work, "trace-off")
os.mkdir(d)
with open(os.path.join(d, "trace.json"), "w") as f:
    f.write("{}\n")
p = subprocess.run([reflex, "demo", "--duration", "1", "--quiet", "--out", d,
                    "--set", "telemetry.trace_frames=0"], capture_output=True, text=True,
                   timeout=60)
check(p.returncode == 0 and not os.path.exists(os.path.join(d, "trace.json")) and
      "trace.json" not in p.stdout and os.path.exists(os.path.join(d, "summary.json")),
      f"trace off: no trace.json in the bundle or its listing (exit {p.returncode})",
      p.stdout[-200:] + p.stderr)

# 3d. [engine] layout = latency: capture..execute on one spinning thread on
#     core 0, telemetry parked on core 1 with the planner; a full bundle.
if os.cpu_count() and os.cpu_count() >= 2:
    d = os.path.join(work, "latency_layout")
    p = subprocess.run([reflex, "demo", "--duration", "3", "--out", d, "--quiet",
                        "--set", "engine.layout=latency"], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 0, "layout=latency: demo exits 0", p.stderr)
    if p.returncode == 0:
        s = check_bundle(d, "layout=latency")
        th = {t["name"]: t for t in s["threads"]}
        rt0, tel = th.get("rfx-rt0", {}), th.get("rfx-tel", {})
        check(set(th) >= {"rfx-rt0", "rfx-tel"} and
              rt0.get("stages") == ["capture", "pattern", "decide", "execute"] and
              rt0.get("core") == 0 and rt0.get("wake_late_peak_us") == 0 and
              tel.get("stages") == ["telemetry"] and tel.get("core") == 1,
              f"layout=latency: rt0 {rt0.get('stages')} on core {rt0.get('core')} never slept,"
              f" tel {tel.get('stages')} on core {tel.get('core')}", str(s["threads"]))
        # auto with every critical thread spinning: no request, as its core
        # never idles and polling telemetry's core would only take host time.
        check(s.get("cpu_latency", {}).get("held_us") is None,
              f"layout=latency: no CPU latency request ({s.get('cpu_latency')})")
        # Telemetry parks on a thread of its own, draining at least every
        # drain_us (2 ms): its frames wait in the ring for it, and it is
        # woken for them.
        tq = s["stages"]["telemetry"]["queue_wait"]
        tw = s["stages"]["telemetry"]["wakeup_lateness"]
        check(tq["count"] == s["stages"]["telemetry"]["count"] and 1000 < tq["p50_ns"] <= 3e6
              and tw["count"] > 0,
              f"layout=latency: telemetry's queue wait p50 {tq['p50_ns']} ns on its own thread, "
              f"woken for {tw['count']} frames", str(tq))

# 4. reflex run: usage and config errors exit 2.
p = subprocess.run([reflex, "run"], capture_output=True, text=True)
check(p.returncode == 2 and "missing CONFIG" in p.stderr, "run without CONFIG: exit 2")
p = subprocess.run([reflex, "run", os.path.join(work, "nope.ini")], capture_output=True, text=True)
check(p.returncode == 2 and "nope.ini: No such file" in p.stderr, "run with a missing file: exit 2")
p = subprocess.run([reflex, "demo", "--set", "engine.burst=0"], capture_output=True, text=True)
check(p.returncode == 2 and "--set engine.burst" in p.stderr, "demo --set with a bad value: exit 2",
      p.stderr)
p = subprocess.run([reflex, "demo", "--duration", "-3"], capture_output=True, text=True)
check(p.returncode == 2, "demo --duration -3: exit 2")

# 5. UDP: this process plays the game; reflex decides over 127.0.0.1.
d = os.path.join(work, "udp")
port_in, port_out = 47310 + os.getpid() % 500, 47900 + os.getpid() % 500
cfg = os.path.join(work, "udp.ini")
with open(cfg, "w") as f:
    f.write(f"[engine]\nframe_hz = 0\nduration_s = 60\n[source]\nkind = udp\nport = {port_in}\n"
            f"[sink]\nkind = udp\nport = {port_out}\n")
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", port_out))
rx.settimeout(2.0)
udp_rec = os.path.join(d, "record.rfx")
proc = subprocess.Popen([reflex, "run", cfg, "--out", d, "--quiet", "--record", udp_rec],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(1.0)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
N = 200
got = {}
for seq in range(N):
    rows = [0] * 16
    rows[15] = 1 << 6  # a hazard right above the bot at x = 6
    body = struct.pack("<16HIBB2x", *rows, seq, 6, 0)
    tx.sendto(struct.pack("<IHHQ", 0x53584652, 1, 16, seq) + body, ("127.0.0.1", port_in))
    try:
        data = rx.recv(64)
        magic, ver, ln, rseq, action, how, level, _, gen = struct.unpack("<IHHQIBBHQ", data)
        if magic == 0x41584652:
            got[rseq] = action
    except socket.timeout:
        pass
# States the game cannot be in (bot off the grid, a fall phase out of range,
# a hazard beyond column 11): pattern drops each, counted; none is answered.
bad_states = [(200, 0, 0), (12, 0, 0), (6, 9, 0), (6, 0, 1 << 13)]
for x, phase, extra in bad_states:
    rows = [0] * 16
    rows[3] = extra
    body = struct.pack("<16HIBB2x", *rows, 0, x, phase)
    tx.sendto(struct.pack("<IHHQ", 0x53584652, 1, 16, 10**6 + x) + body, ("127.0.0.1", port_in))
n_bad = len(bad_states)
time.sleep(0.3)
tx.sendto(struct.pack("<IHHQ", 0x45584652, 1, 16, 0), ("127.0.0.1", port_in))
try:
    out, err = proc.communicate(timeout=20)
    check(proc.returncode == 0, "udp: reflex exits 0 after the end datagram", err)
    check(len(got) == N, f"udp: {len(got)} of {N} states answered with an action")
    check(all(a in (1, 2) for a in got.values()),
          "udp: every answer moves out from under the hazard", str(set(got.values())))
    s = load_summary(d)
    check(s["udp"]["states_received"] == N + n_bad and s["frames"]["executed"] == N,
          f"udp: summary counts {s['udp']['states_received']} states, "
          f"{s['frames']['executed']} executed")
    check(s["udp"]["invalid_states"] == n_bad and s["frames"]["dropped"]["stage"] == n_bad and
          identity_holds(s),
          f"udp: {s['udp']['invalid_states']} states off the game dropped by pattern "
          f"(dropped.stage {s['frames']['dropped']['stage']}), identity holds",
          json.dumps(s["frames"]))
    # The session replays: the states the game sent, decided again, and the
    # ones off the game dropped again by pattern.
    p = subprocess.run([reflex, "replay", udp_rec], capture_output=True, text=True)
    check(p.returncode == 0 and "every decision is identical" in p.stdout
          and f"({N} decisions replayed, {n_bad} pattern drops)" in p.stdout,
          f"udp: the recorded session replays: {N} decisions and {n_bad} pattern drops identical",
          p.stdout + p.stderr)
except subprocess.TimeoutExpired:
    proc.kill()
    check(False, "udp: reflex did not stop after the end datagram")

# 6-8, 11-12. Fault injection, one fault per run. For each: detected (an
#    alert of the right type naming the right stage) within one frame budget
#    of the fault's first action; the ladder reached the expected levels;
#    back to NONE after the fault ended, each step down only after the
#    headroom period; no flapping (at most one relapse); every frame
#    accounted for by reason.
order = ["NONE", "MINIMAL", "MODERATE", "SEVERE", "CRITICAL"]
FRAME_MS = 1000 / 60
fault_figures = []


def fault_run(name, duration, sets, kind, alert_type, stage, lowest, highest, recover_s,
              delays_frames=True):
    d = os.path.join(work, name)
    args = [reflex, "demo", "--duration", str(duration), "--out", d, "--quiet",
            "--set", f"degrade.recover_s={recover_s}"]
    for x in sets:
        args += ["--set", x]
    p = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120)
    check(p.returncode == 0, f"{name}: demo exits 0", p.stderr[-2000:])
    s = load_summary(d)
    f = next((x for x in s["faults"] if x["kind"] == kind), None)
    check(f is not None and f["onset_s"] is not None, f"{name}: the {kind} fault acted",
          str(s["faults"]))
    onset = f["onset_s"] if f and f["onset_s"] is not None else 0
    hits = [a for a in s["alerts"] if a["type"] == alert_type and a["stage"] == stage
            and a["t_s"] >= onset - 0.0005]
    detect_ms = (hits[0]["t_s"] - onset) * 1000 if hits else float("inf")
    check(detect_ms <= FRAME_MS,
          f"{name}: {alert_type} alert naming {stage} {detect_ms:.1f} ms after onset at "
          f"{onset:.3f} s (one frame: {FRAME_MS:.1f} ms)", str(s["alerts"][:6]))
    dg = s["degradation"]
    # How far the fault took the ladder: the levels up to 4 s (two windows)
    # after it ended. A climb later than that is another cause's (seen:
    # sink_fail to SEVERE at 16 s, 6 s after its fault, for a host stall that
    # put e2e p99 at 21 ms); the transition bound below still counts it.
    end = f["to_s"] if f and f.get("to_s") is not None else duration
    tr = dg["transitions"]
    lv = [order.index(x) for x in dg["level_by_interval"][:int(end) + 4]]
    top = max(lv) if lv else 0
    # A fault that only drops frames or stops the planner (delays_frames
    # False) makes no frame late, so a step up for the end-to-end tail is
    # not its doing: the host held a critical thread off its core (seen in
    # CI: stage_fail to SEVERE at 15 s for e2e p99 17.3 ms, every stage's
    # service time in microseconds). How far the fault took the ladder is
    # then read from its own steps; the tail's steps are printed, and the
    # transition bound below still counts them.
    tail_ups = [t for t in tr if not delays_frames and t["cause"].startswith("e2e ")
                and order.index(t["to"]) > order.index(t["from"]) and t["t_s"] <= int(end) + 4]
    own = [t for t in tr if t not in tail_ups and t["t_s"] <= int(end) + 4
           and order.index(t["to"]) > order.index(t["from"])]
    # With the tail's steps mixed in, the fault's reach reads two ways, and
    # either must fall in range: the highest level its own steps reached (a
    # fault that stops at a level, as the failing stage at MODERATE's fast
    # path, stops there wherever the ladder started), or the levels its own
    # steps climbed (a fault that keeps violating, as the failing sink, climbs
    # as long as it lasts, from wherever the tail left the ladder; seen in
    # CI: tail to MINIMAL at 2 s, then the sink's two steps to SEVERE).
    reach = ([max([order.index(t["to"]) for t in own], default=0),
              sum(order.index(t["to"]) - order.index(t["from"]) for t in own)]
             if tail_ups else [top])
    fits = [r for r in reach if order.index(lowest) <= r <= order.index(highest)]
    reached = fits[0] if fits else reach[0]
    check(bool(fits),
          f"{name}: escalated to {order[reached]} by {int(end) + 4} s (expected {lowest}..{highest})"
          + (f" (its own steps: to {order[reach[0]]}, {reach[1]} levels; and for the end-to-end "
             f"tail, not the fault's: "
             f"{'; '.join(str(t['t_s']) + ' s ' + t['to'] + ': ' + t['cause'] for t in tail_ups)})"
             if tail_ups else ""),
          str(dg["level_by_interval"]))
    # Back to NONE after the fault ended. A later escalation for another
    # cause (on this VM, a host stall that pushes e2e over its budget) is the
    # ladder doing its job, not a failure to recover; the transition bound
    # below still allows only one relapse.
    back = next((t["t_s"] for t in tr if t["to"] == "NONE" and t["t_s"] > f["to_s"]), None)
    after = [f"{t['t_s']:.1f} s {t['to']}: {t['cause']}" for t in tr
             if back is not None and t["t_s"] > back]
    # Or, on a host noisy enough that the run ended first: the ladder stepped
    # down after its last step up for the fault, and anything that took it
    # back up later was not the fault's stage (a late frame the host caused;
    # seen: planner_hang down to MODERATE at 23 s, back to SEVERE at 25 s for
    # e2e p99 18 ms). A step up in the two windows (4 s) after the fault
    # ended still judges the fault's frames (seen: overload back to SEVERE
    # at 26 s for pattern p99 2.4 ms over 23-26 s, its fast path's 250 us a
    # frame and a host stall; then down at 37 and 47 s, and a host tail of
    # 13 ms at 51 s held MINIMAL to the end at 60 s).
    up = lambda t: order.index(t["to"]) > order.index(t["from"])
    reach = f["to_s"] + 4
    post = [t for t in tr if t["t_s"] > f["to_s"]]
    last_own_up = max([t["t_s"] for t in post if up(t) and t["t_s"] <= reach] + [f["to_s"]])
    low = any(not up(t) and t["t_s"] > last_own_up for t in post)
    noise_ups = [t for t in post if up(t) and t["t_s"] > reach]
    # A stall of the fault's own stage that began after the fault ended is a
    # new one, not the fault's (seen: the planner stuck 25.3 ms at 20.1 s,
    # after a hang that ended at 15 s, on a host that then held e2e p99 at
    # 2-21 ms for every interval to the end).
    def not_the_faults(t):
        m = re.search(r"stuck [0-9.]+ [mu]?s at ([0-9.]+) s", t["cause"])
        return stage not in t["cause"] or (m is not None and float(m.group(1)) > f["to_s"])
    recovering = back is None and low and all(not_the_faults(t) for t in noise_ups)
    # On failure: each interval after the fault, its level and e2e p99 (ms),
    # to tell a ladder that would not step down from a host that kept the
    # tail over the headroom line.
    names, p99 = dg.get("level_by_interval", []), s.get("e2e_p99_ns_by_interval", [])
    tail = [f"{i + 1}:{names[i]}/{p99[i] / 1e6:.1f}"
            for i in range(int(f["to_s"]), min(len(names), len(p99)))]
    check(back is not None or recovering,
          f"{name}: back to NONE at {back} s, after the fault ended at {f['to_s']} s"
          + (f" (later: {'; '.join(after)})" if after else "")
          + (" (run ended first: stepped down, later steps up "
             f"{[t['cause'] for t in noise_ups]})" if recovering else ""),
          "intervals after the fault (level/e2e p99 ms): " + " ".join(tail))
    slow = [(a["t_s"], b["t_s"]) for a, b in zip(tr, tr[1:])
            if order.index(b["to"]) < order.index(b["from"]) and b["t_s"] - a["t_s"] < recover_s - 0.01]
    check(not slow, f"{name}: every step down after >= {recover_s} s of headroom", str(slow))
    # No flapping: the way up and down again, plus at most one relapse.
    bound = 2 * top + 2
    check(len(tr) <= bound and all(t["cause"] for t in tr),
          f"{name}: {len(tr)} transitions (bound {bound}: up to {order[top]}, down, one relapse), "
          f"each with its cause")
    fr = s["frames"]
    check(identity_holds(s) and fr["dropped_total"] == sum(fr["dropped"].values()),
          f"{name}: captured {fr['captured']} = executed {fr['executed']} + dropped "
          f"{fr['dropped_total']} by reason + 0 in flight")
    visited = []
    for x in dg["level_by_interval"]:
        if not visited or visited[-1] != x:
            visited.append(x)
    drops = {k: v for k, v in fr["dropped"].items() if v}
    fault_figures.append(f"{name}: detected {detect_ms:.1f} ms after onset ({alert_type}, "
                         f"{stage}); levels {' > '.join(visited)}; back to NONE "
                         f"{(back or 0) - f['to_s']:.1f} s after the fault ended; "
                         f"{len(tr)} transitions; drops {drops or 0}")
    for t in tr:
        print(f"  {name} {t['t_s']:6.1f} s {t['from']} -> {t['to']}: {t['cause']}")
    return s


# 6. Overload: a 60 s demo whose pattern stage takes 25 ms a frame on its
#    full path (over the 16.7 ms frame) from 10 s to 25 s. MODERATE takes
#    the fast path and ends the overload; the ladder may climb one level
#    past SEVERE when a host stall of this VM lands in a degraded window
#    (seen: pattern's p99 at 2.24 ms against 2 ms, on the fast path), which
#    is the ladder answering a real late frame, not the fault.
s = fault_run("overload", 60, ["fault.stage=pattern", "fault.work_us=25000", "fault.from_s=10",
                               "fault.to_s=25"], "overload", "budget_exceeded", "pattern",
              "MODERATE", "CRITICAL", 5)
idx = [order.index(x) for x in s["degradation"]["level_by_interval"]]
first_mod = next((i for i, x in enumerate(idx) if x >= 2), None)
p99 = s["e2e_p99_ns_by_interval"]
if first_mod is not None:
    degraded = [p99[i] for i in range(first_mod + 2, len(p99)) if idx[i] >= 2]
    # A 1-s interval holds 60 frames, so its p99 is its worst frame or so:
    # one host stall of this VM (gaps of 10-40 ms happen) puts an interval
    # over the frame (seen: 2 of 15 at 17.0 and 18.2 ms). Undegraded, every
    # interval of the fault is over it (25 ms of work a frame, and growing
    # queues), so at most one in five over the frame still shows the ladder
    # bringing the tail within the frame. The median is printed (seen: 1.1
    # ms alone, 5.8 ms beside the other suites in CI).
    over = [round(x / 1e6, 1) for x in degraded if x >= 16.7e6]
    med = sorted(degraded)[len(degraded) // 2] / 1e6 if degraded else None
    check(degraded and len(over) <= max(1, len(degraded) // 5),
          f"overload: e2e p99 once degraded under the 16.7 ms frame in {len(degraded) - len(over)}"
          f" of {len(degraded)} intervals (over: {over} ms), median {med and round(med, 2)} ms")
print("overload timeline:", s["degradation"]["level_by_interval"])

# 7. Stall: decide stalls for 40 ms every 120 frames (2 s) from 5 s to 15 s.
#    Every 3 s window from the first stall to 3 s after the last holds one
#    (e2e p99 over budget): ~11 violated windows, a level per 2, so SEVERE
#    or CRITICAL at the top. 50 s: the transition bound allows one relapse
#    (a host stall of this VM after the fault pushes e2e over its budget
#    again), and climbing down from CRITICAL after it takes four steps of
#    about 6 s; in 35 s a relapse at 22 s still ended the run at MODERATE.
s = fault_run("stall", 50, ["fault.stall_stage=decide", "fault.stall_ms=40",
                            "fault.stall_every=120", "fault.from_s=5", "fault.to_s=15"],
              "stall", "stall", "decide", "SEVERE", "CRITICAL", 3)
# Within the fault window every stall is decide's. Outside it, a host stall
# of this VM can hold any thread (the watchdog is right to report it); those
# are printed, not counted.
win = [x for x in s["watchdog"]["events"] if 5 <= x["start_s"] <= 16]
other = [(x["stage"], x["start_s"], x["duration_ms"]) for x in s["watchdog"]["events"]
         if x not in win]
ev = win
check(len(ev) >= 4 and all(x["stage"] == "decide" for x in ev),
      f"stall: {len(ev)} stalls of stage decide reported in the fault window"
      + (f" (outside it: {other})" if other else ""), str(ev))
check(ev and max(x["detected_after_ms"] for x in ev) <= FRAME_MS,
      f"stall: each detected within one frame budget (worst "
      f"{max([x['detected_after_ms'] for x in ev] or [0]):.1f} ms of 16.7)")
check(ev and all(35 <= x["duration_ms"] <= 60 for x in ev),
      "stall: durations measured (40 ms stalls)", str([x["duration_ms"] for x in ev]))
stall_alerts = [a for a in s["alerts"] if a["type"] == "stall" and 5 <= a["t_s"] <= 16]
check(stall_alerts and all(a["stage"] == "decide" and a["severity"] == "critical"
                           for a in stall_alerts),
      f"stall: {len(stall_alerts)} critical stall alerts naming decide "
      f"({s['alerts_by_type']['stall']['suppressed']} rate-limited)")
if s["watchdog"]["stack_dumps"]:
    check(ev and "reflex" in ev[0]["stack"] and ev[0]["stack"].count("\n") >= 3,
          "stall: the stalled thread's stack is in the log and summary.json",
          ev[0]["stack"] if ev else "")
    # The engine's static functions are named (from the binary's .symtab).
    named = re.findall(r"reflex\((fault_work|run_stages|thread_main)\+0x", ev[0]["stack"]) if ev else []
    check(named, f"stall: the stack names the engine's static functions ({', '.join(named)})",
          ev[0]["stack"] if ev else "")
    # The dump unwinds on the stalled critical thread itself: it reads
    # .eh_frame of every object on the stack, mapped before start.
    crit = [(t["name"], t["page_faults_after_start"], t["allocated_bytes_after_start"])
            for t in s["threads"] if t["critical"]]
    check(crit and all(f == 0 and a == 0 for _, f, a in crit),
          f"stall: stacks dumped, and still 0 page faults and 0 bytes allocated on critical "
          f"threads after start {crit}")
print("stall events:", [(x["frame"], x["detected_after_ms"], x["duration_ms"],
                         x["off_cpu_ms_min"]) for x in ev])
# The stall above spins: its thread stayed on its CPU, and the watchdog's
# off-CPU figure (a lower bound from the thread's CPU clock) says so. The
# host takes a share of a spinning vCPU too: usually a few ms of a 40-ms
# stall, but in a noisy spell 12-16 ms of most of them (median share 0.30
# seen). Under half still tells spinning from sleeping, whose stalls below
# are each over 0.75 off CPU (0.94 and more seen).
off = sorted(x["off_cpu_ms_min"] / x["duration_ms"] for x in ev if x["off_cpu_ms_min"] is not None)
check(off and off[len(off) // 2] < 0.5,
      f"stall: a spinning stall is on CPU (median off-CPU share {off[len(off) // 2]:.2f})"
      if off else "stall: off_cpu_ms_min reported", str(off))
states = [x["kernel_state"] for x in ev]
check(states and all(k == "R" for k in states),
      f"stall: a spinning stall's thread is running or runnable in the kernel when reported "
      f"({len(states)} x R)", str(states))

# 7b. The same stall sleeping (fault.stall_sleep: off CPU, as a call blocked
#     in the kernel would be): the watchdog reports it off CPU, in
#     summary.json and in the alert.
d = os.path.join(work, "stall_sleep")
p = subprocess.run([reflex, "demo", "--duration", "6", "--out", d, "--quiet",
                    "--set", "fault.stall_stage=decide", "--set", "fault.stall_ms=40",
                    "--set", "fault.stall_every=60", "--set", "fault.from_s=1",
                    "--set", "fault.to_s=5", "--set", "fault.stall_sleep=true"],
                   capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "stall_sleep: demo exits 0", p.stderr[-2000:])
s = load_summary(d)
ev = [x for x in s["watchdog"]["events"] if x["stage"] == "decide" and 1 <= x["start_s"] <= 5.5]
off = sorted(x["off_cpu_ms_min"] / x["duration_ms"] for x in ev if x["off_cpu_ms_min"] is not None)
check(len(ev) >= 3 and len(off) == len(ev) and off[0] >= 0.75,
      f"stall_sleep: {len(ev)} sleeping stalls of decide, each reported off CPU for at least "
      f"{off[0] if off else 0:.2f} of its duration",
      str([(x["duration_ms"], x["off_cpu_ms_min"]) for x in ev]))
stall_alerts = [a for a in s["alerts"] if a["type"] == "stall" and a["stage"] == "decide"]
check(stall_alerts and all("off CPU" in a["message"] for a in stall_alerts),
      f"stall_sleep: the stall alert says so: {stall_alerts[0]['message'] if stall_alerts else ''}",
      str(stall_alerts))
waits = [(x["kernel_state"], x["kernel_wait"]) for x in ev]
check(waits and all(k in ("S", "D") and (w is None or "sleep" in w) for k, w in waits)
      and all("asleep in" in a["message"] for a in stall_alerts),
      f"stall_sleep: each stall's thread asleep in the kernel when reported "
      f"({sorted(set(waits))}), and the alert says where", str(waits))

# 7c. At a fast frame rate the stall threshold is under a millisecond, and
#     the alert says it in microseconds (it once read "threshold 0.0 ms").
#     On two CPUs the monitor has no CPU of its own: at its default normal
#     priority it can wait behind a stall spinning on its CPU for up to a
#     scheduler tick (4 ms at HZ=250) and miss it (31 of 80 such 3-ms stalls
#     here); at [watchdog] priority = fifo:1 it preempts it, and reports
#     every one within the threshold plus one frame (BRIEF §3).
for prio in ("normal", "fifo:1"):
    d, p = run_ini(f"stall_fast_{prio[:4]}", "[engine]\nframe_hz = 2000\n"
                   "[source]\nkind = synthetic\n[sink]\nkind = null\n"
                   f"[watchdog]\npriority = {prio}\n"
                   "[fault]\nstall_stage = decide\nstall_ms = 3\nstall_every = 500\n",
                   "--duration", "4")
    check(p.returncode == 0, f"stall_fast at {prio}: run exits 0", p.stderr[-2000:])
    s = load_summary(d)
    wd = s["watchdog"]
    lim_us = wd["stall_threshold_ms"] * 1e3
    stall_alerts = [a for a in s["alerts"] if a["type"] == "stall" and a["stage"] == "decide"]
    want = f"stall threshold {lim_us:.0f} us"
    fifo = wd["priority_in_effect"].startswith("fifo")
    # At normal priority a run may see none of its stalls (above); what it
    # does see must say the threshold in us.
    check(lim_us < 1000 and (stall_alerts or not fifo)
          and all(want in a["message"] for a in stall_alerts),
          f"stall_fast at {prio}: threshold {lim_us:.0f} us; the alert: "
          f"{stall_alerts[0]['message'] if stall_alerts else '(none)'}",
          str(s["alerts"]))
    injected = (s["frames"]["captured"] + 499) // 500  # frames 0, 500, 1000, ...
    seen = [x for x in wd["events"] if x["stage"] == "decide" and x["duration_ms"] >= 2.9]
    due_ms = lim_us / 1e3 + 1e3 / 2000
    prompt = [x for x in seen if x["detected_after_ms"] <= due_ms]
    if fifo:
        # One miss allowed for the host taking the monitor's vCPU for a
        # millisecond or more during a stall (about one such gap a second).
        check(len(prompt) >= injected - 1,
              f"stall_fast at {prio}: {len(prompt)} of {injected} 3-ms stalls reported within "
              f"{due_ms:.2f} ms of their start (threshold and one frame), {len(seen)} in all",
              str([(x["start_s"], x["detected_after_ms"], x["duration_ms"])
                   for x in wd["events"]]))
    else:
        print(f"info stall_fast at {prio} (in effect: {wd['priority_in_effect']}): {len(seen)} "
              f"of {injected} 3-ms stalls seen, {len(prompt)} within {due_ms:.2f} ms")


def check_trace(path, label, expect_violation):
    """trace.json: JSON in the Chrome trace event format, as Perfetto and
    chrome://tracing read it: the fields each phase needs, begin/end pairs
    matched, the complete slices of a track nested or disjoint."""
    with open(path) as f:
        t = json.load(f)
    ev = t["traceEvents"]
    need = {"X": ("name", "ts", "dur", "pid", "tid"), "b": ("name", "cat", "id", "ts", "pid"),
            "e": ("name", "cat", "id", "ts", "pid"), "i": ("name", "ts", "pid", "s"),
            "M": ("name", "pid", "args")}
    bad = [e for e in ev if e.get("ph") not in need or any(k not in e for k in need[e["ph"]])]
    check(not bad, f"{label}: {len(ev)} trace events, each with its phase's fields", str(bad[:3]))
    opened, unmatched, spans = {}, 0, 0
    for e in ev:
        if e["ph"] == "b":
            opened[(e["cat"], e["id"])] = e["ts"]
        elif e["ph"] == "e":
            b = opened.pop((e["cat"], e["id"]), None)
            spans += 1
            unmatched += b is None or b > e["ts"]
    check(spans > 0 and unmatched == 0 and not opened,
          f"{label}: {spans} frame spans, each begun before it ends and closed")
    tracks = {}
    negative = sum(1 for e in ev if e["ph"] == "X" and e["dur"] < 0)
    check(negative == 0, f"{label}: no slice with a negative duration")
    for e in ev:
        if e["ph"] == "X":
            tracks.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    crossing = 0
    for sl in tracks.values():
        sl.sort(key=lambda x: (x[0], -x[1]))
        stack = []
        for a0, a1 in sl:
            while stack and stack[-1] <= a0:  # exact: the times are binary fractions
                stack.pop()
            if stack and a1 > stack[-1]:
                crossing += 1
            stack.append(a1)
    check(crossing == 0, f"{label}: slices on each of {len(tracks)} thread tracks nest or are "
          f"disjoint ({crossing} crossing)")
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    check(any(n.startswith("rfx-rt0") for n in names), f"{label}: tracks named by thread",
          str(names))
    flagged = [e for e in ev if e.get("args", {}).get("violating_frame")]
    if expect_violation:
        check(flagged and any(e["name"].startswith("budget violation") for e in ev),
              f"{label}: the violating frame flagged ({len(flagged)} events) with an instant "
              f"event; {t['otherData']['windows']} windows")
        check(any(e["name"].startswith("level ") and e["ph"] == "i" for e in ev),
              f"{label}: degradation transitions as instant events")
    return t


check_trace(os.path.join(work, "stall", "trace.json"), "stall trace.json", True)

# 8. Failing sink: it fails every frame from 5 s to 10 s; the breaker opens.
#    Every frame of those 5 s is dropped (sink_failed, then circuit_open),
#    and the ladder steps a level per two violating windows: at 7 and 9 s
#    in most runs, at 6, 8 and 10 s once in 11 (every step naming
#    execute's drops), by how the fault falls among the 1-s intervals. So
#    MODERATE or SEVERE.
s = fault_run("sink_fail", 25, ["fault.sink_fail_prob=1", "fault.from_s=5", "fault.to_s=10"],
              "sink_fail", "drops", "execute", "MINIMAL", "SEVERE", 3, delays_frames=False)
br = s["breaker"]
tr = br["transitions"]
check(tr and tr[0]["to"] == "OPEN" and 5 <= tr[0]["t_s"] < 5.5,
      f"sink_fail: breaker opened at {tr[0]['t_s'] if tr else None} s after "
      f"{br['failures']} failures")
check(br["state"] == "CLOSED" and tr[-1]["to"] == "CLOSED" and tr[-1]["t_s"] >= 10,
      f"sink_fail: breaker closed again at {tr[-1]['t_s'] if tr else None} s")
fr = s["frames"]
check(fr["dropped"]["circuit_open"] > 200 and fr["dropped"]["sink_failed"] >= 5,
      f"sink_fail: {fr['dropped']['circuit_open']} frames rejected while open (circuit_open), "
      f"{fr['dropped']['sink_failed']} failed (sink_failed)")
opened = [a for a in s["alerts"] if a["type"] == "circuit_open" and a["stage"] == "execute"]
check(opened and opened[0]["t_s"] - tr[0]["t_s"] <= FRAME_MS / 1000,
      f"sink_fail: circuit_open alert {(opened[0]['t_s'] - tr[0]['t_s']) * 1000 if opened else -1:.1f}"
      f" ms after the breaker opened")

# 11. Failing stage: pattern fails 20 % of frames on its full path from 5 s
#     to 15 s; MODERATE's fast path avoids the failing code, so the ladder
#     should stop there.
s = fault_run("stage_fail", 30, ["fault.fail_stage=pattern", "fault.fail_prob=0.2",
                                 "fault.from_s=5", "fault.to_s=15"],
              "stage_fail", "drops", "pattern", "MODERATE", "MODERATE", 3, delays_frames=False)
check(s["frames"]["dropped"]["stage"] > 0 and
      sum(s["frames"]["dropped"].values()) == s["frames"]["dropped"]["stage"],
      f"stage_fail: {s['frames']['dropped']['stage']} frames dropped, all with reason stage")

# 12. Hung planner: the planner's call hangs 10 s from 5 s; the demo's
#     planner calls take a few ms, so a 6 ms planner stall threshold. The
#     ladder goes as far as SEVERE (no planning) and holds there. On a noisy
#     host an ordinary planner call can pass 6 ms before the fault (a real
#     stall, alerted and recorded): alerts are not rate-limited here, so that
#     one cannot hold back the hang's, and the hang is the event that began
#     at the onset.
s = fault_run("planner_hang", 32, ["fault.planner_hang_ms=10000", "fault.from_s=5",
                                   "fault.to_s=15", "watchdog.planner_stall_ms=6",
                                   "alerts.rate_limit_s=0"],
              "planner_hang", "stall", "planner", "SEVERE", "SEVERE", 3, delays_frames=False)
hang_onset = next((x["onset_s"] for x in s["faults"] if x["kind"] == "planner_hang"), None) or 0
pe = [x for x in s["watchdog"]["events"]
      if x["stage"] == "planner" and x["start_s"] >= hang_onset - 0.05]
check(pe and 9900 <= pe[0]["duration_ms"] <= 10500 and pe[0]["ended"],
      f"planner_hang: the hang measured {pe[0]['duration_ms'] if pe else -1:.0f} ms (10000)")
# Every frame executed: the cache and the fallback serve while the planner
# hangs. Or, on a host whose stalls took e2e over its budget after the hang
# ended, frames shed as stale at a CRITICAL the ladder reached only then for
# a cause not the planner's (seen: e2e p99 14.0 ms at 19 s, 3 frames shed).
fr = s["frames"]
tr = s["degradation"]["transitions"]
crit = [t for t in tr if t["to"] == "CRITICAL"]
shed_after = (fr["dropped_total"] == fr["dropped"]["stale"] and bool(crit)
              and all(t["t_s"] > 15 and "planner" not in t["cause"] for t in crit))
check(fr["executed"] == fr["captured"] or shed_after,
      "planner_hang: every frame executed while the planner hung (cache and fallback)"
      + (f"; {fr['dropped']['stale']} shed as stale after it, at CRITICAL from "
         f"{crit[0]['t_s']} s for {crit[0]['cause']}" if fr["executed"] != fr["captured"] else ""),
      f"{fr} {[(t['t_s'], t['to'], t['cause']) for t in tr]}")
print("fault figures:")
for x in fault_figures:
    print("  " + x)

# 9. Persistence: a cold run writes the snapshot, a warm run starts from it;
#    a corrupt snapshot is reported and ignored.
snap = os.path.join(work, "cache.rfxc")
rates = {}
for run in ("cold", "warm"):
    d = os.path.join(work, run)
    p = subprocess.run([reflex, "demo", "--duration", "10", "--out", d, "--quiet",
                        "--set", f"cache.persist_path={snap}"],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"persist: {run} demo exits 0", p.stderr)
    s = load_summary(d)
    hr = [x for x in s["cache"]["hit_rate_by_interval"][:10] if x is not None]
    rates[run] = sum(hr) / len(hr) if hr else 0
    if run == "warm":
        check(s["persistence"]["loaded_l1"] > 0 and "warm start" in p.stderr,
              f"persist: warm start loaded {s['persistence']['loaded_l1']} L1 and "
              f"{s['persistence']['loaded_l2']} L2 entries")
check(rates["warm"] > rates["cold"],
      f"persist: first-10-s hit rate warm {rates['warm']:.3f} > cold {rates['cold']:.3f}")
with open(snap, "r+b") as f:
    f.seek(60)
    b = f.read(1)
    f.seek(60)
    f.write(bytes([b[0] ^ 0xFF]))
d = os.path.join(work, "corrupt")
p = subprocess.run([reflex, "demo", "--duration", "2", "--out", d, "--quiet",
                    "--set", f"cache.persist_path={snap}"], capture_output=True, text=True,
                   timeout=60)
s = load_summary(d)
check(p.returncode == 0 and "checksum mismatch" in p.stderr and "cold start" in p.stderr
      and s["persistence"]["loaded_l1"] == 0 and "checksum" in s["persistence"]["load_error"],
      "persist: a corrupt snapshot is reported and ignored (cold start)", p.stderr)
# The corrupt run wrote a good snapshot at its stop. Made as if by a demo
# whose keys had no key schema (0, before the L2 key held the fall phase):
# refused, naming both schemas, and a cold start.
with open(snap, "r+b") as f:
    f.seek(20)
    schema = int.from_bytes(f.read(4), "little")
    f.seek(20)
    f.write(bytes(4))
d = os.path.join(work, "old_keys")
p = subprocess.run([reflex, "demo", "--duration", "2", "--out", d, "--quiet",
                    "--set", f"cache.persist_path={snap}"], capture_output=True, text=True,
                   timeout=60)
s = load_summary(d)
check(schema == 2 and p.returncode == 0 and
      "made for keys of schema 0, this pipeline's are schema 2" in p.stderr and
      "cold start" in p.stderr and s["persistence"]["loaded_l1"] == 0,
      f"persist: a snapshot for other keys (schema 0; the demo's are {schema}) is not loaded",
      p.stderr)

# 10. Cache rules: a 3 s TTL, entries not re-planned in 8 snapshots, and each
#     hit raises critical_health, whose rule drops the exploration_* plans
#     (seed 000's rules are the defaults). TTL and generations get a run each:
#     in one run, which of the two drops an unplanned entry first depends on
#     how many snapshots the adaptive planner publishes in 3 s. The generation
#     run pins the planner at 4 Hz, so 8 generations pass in 2 s or less.
d = os.path.join(work, "rules")
p = subprocess.run([reflex, "demo", "--duration", "10", "--out", d, "--quiet",
                    "--set", "cache.ttl_s=3", "--set", "alerts.hit_rate_warning=0.99"],
                   capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "rules: TTL demo exits 0", p.stderr)
s = load_summary(d)
# With the warning at 99 %, every armed interval under it raises one (5 s
# apart at most, the rate limit); never the first, which began cold.
hrs = s["cache"]["hit_rate_by_interval"]
ah = [a for a in s["alerts"] if a["type"] == "cache_hit_rate"]
under = [i for i, x in enumerate(hrs) if i > 0 and x is not None and x < 0.99]
check(bool(ah) == bool(under) and
      all(round(a["t_s"]) >= 2 and hrs[round(a["t_s"]) - 1] < 0.99 for a in ah),
      f"rules: hit-rate warning at 99 %: {len(ah)} alert(s) at "
      f"{[a['t_s'] for a in ah]} s, intervals under it after the first: {under}", str(hrs))
inv = s["cache"]["invalidations"]
check(inv["ttl"] > 0 and inv["generation"] == 0,
      f"rules: {inv['ttl']} entries expired by the 3 s TTL, {inv['generation']} by generation "
      f"(no limit set)")
dg = os.path.join(work, "rules-gen")
pg = subprocess.run([reflex, "demo", "--duration", "10", "--out", dg, "--quiet",
                     "--set", "cache.max_generations=8", "--set", "strategic.hz=4",
                     "--set", "strategic.min_hz=4", "--set", "strategic.max_hz=4"],
                    capture_output=True, text=True, timeout=120)
check(pg.returncode == 0, "rules: generations demo exits 0", pg.stderr)
sg = load_summary(dg)
ig = sg["cache"]["invalidations"]
check(ig["generation"] > 0 and ig["ttl"] == 0 and sg["cache"]["max_generations"] == 8,
      f"rules: {ig['generation']} entries dropped as older than 8 generations, "
      f"{ig['ttl']} by the TTL (300 s)")
ch = inv["critical_health"]
check(ch["events"] == s["demo"]["hits"] and (ch["events"] == 0 or ch["entries"] > 0),
      f"rules: {ch['events']} critical_health events (one per hit: {s['demo']['hits']}) "
      f"dropped {ch['entries']} exploration_* entries")
check(inv["area_change"]["events"] == 0 and inv["area_change"]["entries"] == 0,
      "rules: no area_change event, nothing dropped for it")
check("l1_hit_rate" in s["cache"] and "l2_hit_rate" in s["cache"], "rules: hit rate per level")

# 13. Live status: a plain line every 5 s when stderr is not a terminal; on a
#     terminal one line redrawn about once a second with a progress bar;
#     nothing with --quiet.
p = subprocess.run([reflex, "demo", "--duration", "6", "--out", os.path.join(work, "st1")],
                   capture_output=True, text=True, timeout=60)
lines = [l for l in p.stderr.splitlines() if " fps " in l]
check(p.returncode == 0 and len(lines) == 1 and "\r" not in p.stderr and
      all(k in lines[0] for k in ("e2e p99", "worst", "level ", "hit", "drops 0")),
      f"status, not a terminal: {len(lines)} plain line(s) in 6 s", p.stderr)
# The e2e p99 in a unit that shows its digits (a demo's, tens of us, once
# printed as "0.02 ms").
m = re.search(r"e2e p99 (\d+\.\d+) (us|ms|s) ", lines[0] if lines else "")
check(m and float(m.group(1)) >= 1.0, "status: the e2e p99 in a unit that shows it "
      f"({m.group(0).strip() if m else 'none'})", lines[0] if lines else "")
master, slave = pty.openpty()
proc = subprocess.Popen([reflex, "demo", "--duration", "4", "--out", os.path.join(work, "st2")],
                        stdout=subprocess.DEVNULL, stderr=slave)
os.close(slave)
buf = b""
while True:
    r, _, _ = select.select([master], [], [], 20)
    if not r:
        break
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
proc.wait(timeout=30)
os.close(master)
text = buf.decode(errors="replace")
redraws = text.count("\r   ")
check(proc.returncode == 0 and redraws >= 3 and "[####################]" in text and
      "\x1b[K" in text and " fps " in text,
      f"status on a terminal: {redraws} redraws of one line, progress bar filled", repr(text[-400:]))
p = subprocess.run([reflex, "demo", "--duration", "3", "--quiet", "--out",
                    os.path.join(work, "st3")], capture_output=True, text=True, timeout=60)
check(p.returncode == 0 and " fps " not in p.stderr, "--quiet: no status lines", p.stderr)

finish(failures, work)
