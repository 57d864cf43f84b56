#!/usr/bin/env python3
"""A run bundle's latency.hlog read by HdrHistogram itself (Debian's
libhdrhistogram-java 2.1.11): for every tag, the merged intervals give the
percentiles summary.json reports (count, p50, p99, p99.9, max), and
HistogramLogProcessor decodes each tag to the same total count and max.

usage: test_bundle_hlog.py REFLEX INTEROP_DIR"""
import json
import os
import re
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from scratch import finish  # noqa: E402

reflex, src = sys.argv[1], sys.argv[2]
jar = "/usr/share/java/hdrhistogram.jar"
work = tempfile.mkdtemp(prefix="rfx-bundle-hlog-")
failures = 0


def check(ok, what, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f" {detail}"))
    failures += not ok


d = os.path.join(work, "demo")
p = subprocess.run([reflex, "demo", "--duration", "8", "--quiet", "--out", d],
                   capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "demo exits 0", p.stderr[-1000:])
with open(os.path.join(d, "summary.json")) as f:
    s = json.load(f)
hlog = os.path.join(d, "latency.hlog")
out = os.path.join(work, "java.txt")
p = subprocess.run(["java", "-cp", jar, os.path.join(src, "HdrInterop.java"), "percentiles", hlog,
                    out], capture_output=True, text=True, timeout=120)
check(p.returncode == 0, "HdrHistogram's HistogramLogReader reads latency.hlog", p.stderr[-1000:])
java = {}
for line in open(out):
    tag, count, p50, p90, p99, p999, p9999, mx = line.split()
    java[tag] = dict(count=int(count), p50=int(p50), p99=int(p99), p999=int(p999), max=int(mx))
tags = ["capture", "pattern", "decide", "execute", "telemetry", "e2e"]
check(set(tags) <= set(java),
      f"tags in the log: {sorted(java)}")
for tag in tags:
    ours = s["e2e"] if tag == "e2e" else s["stages"][tag]
    j = java.get(tag, {})
    pairs = [("count", "count"), ("p50", "p50_ns"), ("p99", "p99_ns"), ("p999", "p999_ns"),
             ("max", "max_ns")]
    same = all(j.get(a) == ours[b] for a, b in pairs)
    check(same, f"{tag}: HdrHistogram gives summary.json's count {ours['count']}, p50 "
          f"{ours['p50_ns']}, p99 {ours['p99_ns']}, p99.9 {ours['p999_ns']}, max {ours['max_ns']}",
          f"java {j}")
    p = subprocess.run(["java", "-cp", jar, "org.HdrHistogram.HistogramLogProcessor", "-i", hlog,
                        "-tag", tag, "-outputValueUnitRatio", "1"],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"#\[Max\s*=\s*([\d.]+),\s*Total count\s*=\s*(\d+)\]", p.stdout)
    check(p.returncode == 0 and m and int(m.group(2)) == ours["count"]
          and float(m.group(1)) == ours["max_ns"],
          f"{tag}: HistogramLogProcessor decodes it: max {m.group(1) if m else None}, "
          f"count {m.group(2) if m else None}", p.stderr[-500:])
finish(failures, work)
