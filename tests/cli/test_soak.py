#!/usr/bin/env python3
"""Soak: memory stays flat over a long run (BRIEF §7: resident memory flat
over a 10-minute run). The demo runs at 1 kHz, so the planner republishes
the cache many times a second and every frame goes round the pool, and
summary.json's memory series (one sample per 1-s interval) is checked
after a warm-up of a tenth of the run (at least 10 s):

- live heap (jemalloc stats.allocated) rises by at most LIVE_MAX bytes from
  any earlier low point: a leak of one small allocation per frame (64 B at
  1 kHz) crosses it in 16 s. A fall is not a leak: the cache's snapshots
  shrink when the planner's entries age out (a run fell 1.01 MiB after its
  warm-up and failed the old check, the whole range);
- the process's resident set never rises more than RSS_MAX above its value
  at the end of the warm-up, and ends no higher than that either (jemalloc
  keeps and returns dirty pages in steps of a few hundred KB).

45 s by default; RFX_STRESS_LONG=1 (tools/run.sh test with RFX_LONG=1)
runs the full 10 minutes. Usage: test_soak.py REFLEX"""
import json
import os
import subprocess
import sys
import tempfile

from scratch import finish

LIVE_MAX = 1 << 20
RSS_MAX = 4 << 20

reflex = sys.argv[1]
seconds = 600 if os.environ.get("RFX_STRESS_LONG") == "1" else 45
work = tempfile.mkdtemp(prefix="rfx-soak-")
failures = 0


def check(ok, what, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ' ' + detail}")
    failures += not ok


d = os.path.join(work, "soak")
print(f"soak: reflex demo for {seconds} s at 1 kHz", flush=True)
p = subprocess.run([reflex, "demo", "--duration", str(seconds), "--out", d, "--quiet",
                    "--set", "engine.frame_hz=1000"],
                   capture_output=True, text=True, timeout=seconds + 120)
check(p.returncode == 0, "demo exits 0", p.stderr[-2000:])
if p.returncode != 0:
    sys.exit(1)
with open(os.path.join(d, "summary.json")) as f:
    s = json.load(f)
fr = s["frames"]
check(fr["captured"] == fr["executed"] + sum(fr["dropped"].values()) and fr["in_flight"] == 0,
      f"identity: captured {fr['captured']} = executed {fr['executed']} + dropped "
      f"{sum(fr['dropped'].values())} + in flight {fr['in_flight']}; dropped by reason: "
      f"{', '.join(f'{k} {v}' for k, v in fr['dropped'].items() if v) or 'none'}")
m = s["memory"]
rss, live = m["rss_bytes_by_interval"], m["jemalloc_allocated_bytes_by_interval"]
# The last interval is partial and closes during the drain.
rss, live = rss[:-1], live[:-1]
check(len(rss) >= seconds - 2 and None not in rss and None not in live,
      f"{len(rss)} full intervals with RSS and live heap", str(m)[:500])
if failures:
    sys.exit(1)
warm = max(10, len(rss) // 10)
mb = 1 / (1 << 20)
r0, l0 = rss[warm], live[warm]
low, rise = live[warm], 0
for v in live[warm:]:
    low = min(low, v)
    rise = max(rise, v - low)
check(rise <= LIVE_MAX,
      f"live heap flat after {warm} s: {l0 * mb:.2f} MiB, largest rise {rise * mb:.3f} MiB "
      f"(at most {LIVE_MAX * mb:.2f}), range {(max(live[warm:]) - min(live[warm:])) * mb:.3f}, "
      f"end {live[-1] * mb:.2f} MiB")
check(max(rss[warm:]) - r0 <= RSS_MAX and rss[-1] <= r0 + RSS_MAX,
      f"RSS flat after {warm} s: {r0 * mb:.2f} MiB, peak {max(rss[warm:]) * mb:.2f}, end "
      f"{rss[-1] * mb:.2f} (at most {RSS_MAX * mb:.2f} MiB above {r0 * mb:.2f})")
print(f"snapshots published: {s['cache']['publications']}, frames: {fr['executed']}")
finish(failures, work)
