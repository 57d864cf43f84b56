#!/usr/bin/env python3
"""The Prometheus endpoint and metrics.prom, checked with Prometheus' own
tools: a demo serves /metrics on an ephemeral loopback port; promtool checks
live scrapes and the bundle's metrics.prom; a real Prometheus server scrapes
the endpoint every second and its query API must return reflex's series;
the endpoint refuses other paths, other methods, oversized and silent
requests and keeps serving. Then the exposition is checked against
summary.json.

usage: test_metrics.py REFLEX   (needs promtool and prometheus: Debian package prometheus)"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

reflex = sys.argv[1]
work = tempfile.mkdtemp(prefix="rfx-metrics-")
failures = 0


def check(ok, what, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f" {detail}"))
    if not ok:
        failures += 1


for tool in ("promtool", "prometheus"):
    if not shutil.which(tool):
        print(f"FAIL {tool} not found (Debian package prometheus)")
        sys.exit(1)


def promtool_ok(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    return p.returncode == 0, p.stdout + p.stderr


def raw(port, data, read=True):
    """Send raw bytes; return the status line (or '' if the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        if not read:
            return ""
        try:
            return s.recv(4096).decode(errors="replace").split("\r\n")[0]
        except (ConnectionResetError, socket.timeout):
            return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


d = os.path.join(work, "demo")
proc = subprocess.Popen([reflex, "demo", "--duration", "25", "--out", d, "--quiet",
                         "--set", "telemetry.metrics_listen=127.0.0.1:0"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
port = None
t0 = time.time()
err_lines = []
while time.time() - t0 < 15:
    line = proc.stderr.readline()
    if not line:
        break
    err_lines.append(line)
    m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
    if m:
        port = int(m.group(1))
        break
check(port is not None, f"the endpoint announces its port ({port})", "".join(err_lines))
if port is None:
    proc.kill()
    sys.exit(1)
# Keep draining stderr so the demo never blocks on a full pipe.
import threading  # noqa: E402

from scratch import finish
threading.Thread(target=lambda: [err_lines.append(x) for x in proc.stderr], daemon=True).start()

url = f"http://127.0.0.1:{port}/metrics"
time.sleep(2.5)  # two intervals closed
with urllib.request.urlopen(url, timeout=5) as r:
    ctype = r.headers.get("Content-Type", "")
    body = r.read().decode()
check(ctype.startswith("text/plain; version=0.0.4"), f"Content-Type '{ctype}'")
ok, out = promtool_ok(body)
check(ok, "a live scrape passes promtool check metrics", out)
check("reflex_frames_captured_total" in body and 'reflex_stage_latency_seconds_bucket{stage="decide"'
      in body, "the scrape has frame counters and per-stage latency histograms")

# Refusals, each followed by a good scrape.
check(raw(port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith("HTTP/1.1 404"),
      "GET /other: 404")
check(raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
      .startswith("HTTP/1.1 405"), "POST /metrics: 405")
check(raw(port, b"GARBAGE\r\n\r\n").startswith("HTTP/1.1 400"), "a garbage request line: 400")
big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
try:
    status = raw(port, big)
except (BrokenPipeError, ConnectionResetError):
    status = "closed"
check(status.startswith("HTTP/1.1 431") or status == "closed",
      f"a 20 kB request head is refused ({status})")
silent = socket.create_connection(("127.0.0.1", port), timeout=5)  # says nothing
t1 = time.time()
with urllib.request.urlopen(url, timeout=5) as r:
    check(r.status == 200, f"a scrape behind a silent client is served after "
          f"{time.time() - t1:.2f} s (the silent one is dropped after 1 s)")
silent.close()

# A real Prometheus server scrapes the endpoint every second.
pport = free_port()
pdir = os.path.join(work, "prom")
os.makedirs(pdir)
with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
    f.write(f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: reflex\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{port}']\n")
prom = subprocess.Popen(["prometheus", f"--config.file={pdir}/prometheus.yml",
                         f"--storage.tsdb.path={pdir}/data",
                         f"--web.listen-address=127.0.0.1:{pport}"],
                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(pdir, "log"), "w"))
api = f"http://127.0.0.1:{pport}/api/v1/query?"
value = None
t1 = time.time()
while time.time() - t1 < 15 and value is None:
    time.sleep(1)
    try:
        q = urllib.parse.urlencode({"query": "reflex_frames_captured_total"})
        with urllib.request.urlopen(api + q, timeout=3) as r:
            res = json.load(r)["data"]["result"]
        if res and float(res[0]["value"][1]) > 0:
            value = float(res[0]["value"][1])
    except (urllib.error.URLError, ConnectionError, KeyError, ValueError):
        pass
check(value is not None, f"Prometheus scraped reflex: reflex_frames_captured_total = {value}",
      open(os.path.join(pdir, "log")).read()[-1500:])
q = urllib.parse.urlencode({"query": "up{job=\"reflex\"}"})
try:
    with urllib.request.urlopen(api + q, timeout=3) as r:
        up = json.load(r)["data"]["result"]
    check(up and up[0]["value"][1] == "1", "Prometheus sees the target up")
    q = urllib.parse.urlencode(
        {"query": "histogram_quantile(0.99, reflex_e2e_latency_seconds_bucket)"})
    with urllib.request.urlopen(api + q, timeout=3) as r:
        hq = json.load(r)["data"]["result"]
    check(hq and float(hq[0]["value"][1]) > 0,
          f"histogram_quantile over the e2e buckets: {hq[0]['value'][1] if hq else None} s")
except urllib.error.URLError as x:
    check(False, "Prometheus query API", str(x))
prom.send_signal(signal.SIGTERM)
try:
    prom.wait(timeout=10)
except subprocess.TimeoutExpired:
    prom.kill()

try:
    proc.wait(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
check(proc.returncode == 0, "the demo exits 0 with the endpoint on", "".join(err_lines)[-2000:])

# metrics.prom: valid, and the same figures as summary.json.
with open(os.path.join(d, "metrics.prom")) as f:
    prom_text = f.read()
ok, out = promtool_ok(prom_text)
check(ok, "metrics.prom passes promtool check metrics", out)
with open(os.path.join(d, "summary.json")) as f:
    s = json.load(f)


def series(name):
    return {m.group(1) or "": float(m.group(2)) for m in
            re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", prom_text, re.M)}


cap = series("reflex_frames_captured_total")[""]
check(cap == s["frames"]["captured"], f"captured {cap:.0f} = summary {s['frames']['captured']}")
ex = series("reflex_frames_executed_total")[""]
check(ex == s["frames"]["executed"], f"executed {ex:.0f} = summary {s['frames']['executed']}")
buckets = series("reflex_e2e_latency_seconds_bucket")
counts = [v for k, v in buckets.items()]
count = series("reflex_e2e_latency_seconds_count")[""]
check(all(a <= b for a, b in zip(counts, counts[1:])) and buckets['le="+Inf"'] == count
      and count == s["e2e"]["count"],
      f"e2e buckets cumulative, +Inf = _count = {count:.0f} = summary e2e count")
mean_ns = series("reflex_e2e_latency_seconds_sum")[""] / count * 1e9
hdr_mean = s["e2e"]["mean_ns"]  # from the histogram: bucket midpoints, 3 significant digits
check(abs(mean_ns - hdr_mean) <= 0.01 * hdr_mean + 1,
      f"exact _sum/_count mean {mean_ns:.1f} ns vs the histogram's {hdr_mean:.1f} ns (1 %)")
for st in ("capture", "pattern", "decide", "execute", "telemetry"):
    c = series("reflex_stage_latency_seconds_count").get(f'stage="{st}"')
    check(c == s["stages"][st]["count"], f"stage {st}: _count {c} = summary count")
finish(failures, work)
