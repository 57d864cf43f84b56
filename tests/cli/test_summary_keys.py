#!/usr/bin/env python3
"""Every key summary.json writes is documented in docs/telemetry.md (BRIEF
section 5: "document them all"), named there as `key` or as a key of the
example. Keys that are data rather than names (stage names, drop reasons,
alert types, rule events, degradation levels, p50/p95/p99) are not looked
up; the key that holds them is.

The runs fill the sections that are empty or absent on a plain demo: a
demo with a stalled decide, a failing pattern stage and a failing sink
(transitions, alerts, watchdog events, breaker transitions, faults),
recorded (`record`); then `reflex run` of that record through the replay
source (`replay_source`).

usage: test_summary_keys.py REFLEX DOCS_TELEMETRY_MD"""
import json
import os
import re
import subprocess
import sys
import tempfile

from scratch import Checks, finish

reflex, doc_path = sys.argv[1], sys.argv[2]
check = Checks()
work = tempfile.mkdtemp(prefix="rfx-keys-")
with open(doc_path) as f:
    doc = f.read()

# The parents whose children are data: each child's name is not a key name.
DATA = {"stages", "dropped", "alerts_by_type", "actions", "violations_by_percentile"}
# cache.invalidations holds `ttl`, `generation`, then one entry per rule event.
NAMED_IN_DATA = {"invalidations": {"ttl", "generation"}}


def keys(obj, path, parent, out):
    """(path, key) of every key of obj whose name should be documented."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            data = parent in DATA or (parent in NAMED_IN_DATA and k not in NAMED_IN_DATA[parent])
            if not data:
                out.setdefault(f"{path}.{k}", k)
            keys(v, f"{path}.<{k}>" if data else f"{path}.{k}", "" if data else k, out)
    elif isinstance(obj, list):
        for x in obj:
            keys(x, path + "[]", parent, out)
    return out


def documented(k):
    return f"`{k}`" in doc or f'"{k}"' in doc


def summary_of(run, argv):
    out = os.path.join(work, run)
    r = subprocess.run([reflex] + argv + ["--quiet", "--out", out], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0, f"{run}: exits 0", f"rc {r.returncode}: {r.stderr[-800:]}")
    try:
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        check(False, f"{run}: summary.json reads", str(err))
        return {}


record = os.path.join(work, "demo.rfx")
demo = summary_of("demo", [
    "demo", "--duration", "4", "--record", record,
    "--set", "fault.stall_stage=decide", "--set", "fault.stall_ms=30",
    "--set", "fault.stall_every=60", "--set", "fault.fail_stage=pattern",
    "--set", "fault.fail_prob=0.05", "--set", "fault.sink_fail_prob=0.3"])
config = os.path.join(work, "replay.ini")
with open(config, "w") as f:
    f.write(f"[source]\nkind = replay\nfile = {record}\n")
replayed = summary_of("replay-source", ["run", config])

found = {}
for s in (demo, replayed):
    keys(s, "", "", found)
# Each section the runs were to fill is there and not empty.
for section in ("record", "replay_source", "demo", "faults"):
    check(bool(demo.get(section) or replayed.get(section)), f"the runs wrote `{section}`")
for path, what in (("degradation", "transitions"), ("watchdog", "events"),
                   ("breaker", "transitions")):
    check(bool(demo.get(path, {}).get(what)), f"demo: {path}.{what} is not empty")
check(bool(demo.get("alerts")), "demo: alerts is not empty")

missing = sorted(p for p, k in found.items() if not documented(k))
check(len(found) > 150 and not missing,
      f"every one of the {len(found)} key paths of summary.json is named in docs/telemetry.md",
      f"{len(missing)} not: " + ", ".join(missing[:20]))
finish(check.failures, work)
