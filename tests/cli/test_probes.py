#!/usr/bin/env python3
"""USDT probes: the seven `reflex` probes are in the ELF notes of the shared
library and of the reflex binary (readelf -n), perf lists them, and — where
this machine lets perf attach uprobes (root, tracefs) — a perf record of a
demo with stalls catches stage_exit on the rfx-* threads and the ladder's
level_change.

usage: test_probes.py REFLEX LIBREFLEX_SO"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

reflex, lib = sys.argv[1], sys.argv[2]
failures = 0
PROBES = {"frame_capture", "stage_enter", "stage_exit", "frame_drop", "cache_publish",
          "level_change", "stall"}


def check(ok, what, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f" {detail}"))
    failures += not ok


for path in (lib, reflex):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    names = set(re.findall(r"Provider: reflex\s+Name: (\w+)", out))
    check(names == PROBES, f"{os.path.basename(path)}: .note.stapsdt has the 7 reflex probes",
          str(sorted(names)))

perf = shutil.which("perf")
check(perf is not None, "perf is installed (Debian linux-perf)")
if perf:
    home = tempfile.mkdtemp(prefix="rfx-perf-")
    env = dict(os.environ, HOME=home)  # perf's build-id cache goes here, not in ~
    subprocess.run([perf, "buildid-cache", "--add", reflex], env=env, capture_output=True)
    out = subprocess.run([perf, "list", "sdt_reflex:*"], env=env, capture_output=True,
                         text=True).stdout
    listed = set(re.findall(r"sdt_reflex:(\w+)", out))
    check(listed == PROBES, f"perf list shows sdt_reflex:* ({len(listed)} probes)", out)
    # Attaching needs uprobes: root and a mounted tracefs.
    if os.geteuid() == 0 and not os.path.exists("/sys/kernel/tracing/uprobe_events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                       capture_output=True)
    p = subprocess.run([perf, "probe", "-x", reflex, "-a", "sdt_reflex:stage_exit", "-a",
                        "sdt_reflex:level_change"], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"SKIP perf record: this machine does not let perf attach uprobes "
              f"({p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode})")
    else:
        data = os.path.join(home, "perf.data")
        out_dir = os.path.join(home, "bundle")
        r = subprocess.run([perf, "record", "-o", data, "-e", "sdt_reflex:stage_exit", "-e",
                            "sdt_reflex:level_change", reflex, "demo", "--duration", "4",
                            "--quiet", "--out", out_dir, "--set", "fault.stall_stage=decide",
                            "--set", "fault.stall_ms=40", "--set", "fault.stall_every=60",
                            "--set", "fault.from_s=0.5"],
                           env=env, capture_output=True, text=True, timeout=120)
        script = subprocess.run([perf, "script", "-i", data], env=env, capture_output=True,
                                text=True).stdout
        exits = [l for l in script.splitlines() if "sdt_reflex:stage_exit" in l]
        levels = [l for l in script.splitlines() if "sdt_reflex:level_change" in l]
        threads = {l.split()[0] for l in exits}
        check(r.returncode == 0 and len(exits) > 500 and threads <= {"rfx-rt0", "rfx-rt1"}
              and threads, f"perf record: {len(exits)} stage_exit hits on threads "
              f"{sorted(threads)}", r.stderr[-800:])
        check(len(levels) >= 1, f"perf record: {len(levels)} level_change hits (the stalls "
              f"moved the ladder)")
        subprocess.run([perf, "probe", "-d", "sdt_reflex:*"], env=env, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
print(f"{failures} failed")
sys.exit(1 if failures else 0)
