#!/usr/bin/env python3
"""Install and embed: build reflex into a temporary prefix with
`meson install`, then build docs/examples/bot — its own meson project using
dependency('reflex') — against that prefix through pkg-config alone, and
run it: its own four stages and planner at 60 FPS, leaving a bundle.

usage: test_embed.py SOURCE_ROOT"""
import glob
import json
import os
import subprocess
import sys
import tempfile

from scratch import finish

src = os.path.abspath(sys.argv[1])
tmp = tempfile.mkdtemp(prefix="rfx-embed-")
prefix = os.path.join(tmp, "prefix")
failures = 0


def check(ok, what, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f" {detail}"))
    failures += not ok


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    return p.returncode, p.stdout + p.stderr


rc, out = run(["meson", "setup", os.path.join(tmp, "lib"), src, f"--prefix={prefix}",
               "-Dbuildtype=release", "-Dtests=false", "-Ddpdk=disabled"])
if rc == 0:
    rc, out = run(["ninja", "-C", os.path.join(tmp, "lib"), "install"])
check(rc == 0, "meson install into a temporary prefix", out[-2000:])
pcs = glob.glob(os.path.join(prefix, "**", "reflex.pc"), recursive=True)
headers = glob.glob(os.path.join(prefix, "include", "reflex", "*.h"))
libs = glob.glob(os.path.join(prefix, "**", "libreflex.so*"), recursive=True)
check(len(pcs) == 1 and len(headers) >= 8 and libs,
      f"installed reflex.pc, {len(headers)} headers, {len(libs)} libreflex.so files")
if failures:
    sys.exit(1)
pcdir = os.path.dirname(pcs[0])
libdir = os.path.dirname([l for l in libs if l.endswith(".so")][0])
env = dict(os.environ, PKG_CONFIG_PATH=pcdir)
rc, cflags = run(["pkg-config", "--cflags", "--libs", "reflex"], env=env)
check(rc == 0 and f"-I{prefix}/include" in cflags and "-lreflex" in cflags,
      f"pkg-config reflex: {cflags.strip()}")
bot = os.path.join(tmp, "bot")
rc, out = run(["meson", "setup", bot, os.path.join(src, "docs", "examples", "bot")], env=env)
if rc == 0:
    rc, out = run(["ninja", "-C", bot], env=env)
check(rc == 0, "the example bot builds against the installed library (pkg-config only)",
      out[-2000:])
exe = os.path.join(bot, "aimbot")
rc, ldd = run(["ldd", exe], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
check(rc == 0 and os.path.join(libdir, "libreflex.so") in ldd,
      "it links the installed libreflex.so", ldd)
bundle = os.path.join(tmp, "out")
rc, out = run([exe, "4", bundle], env=dict(os.environ, LD_LIBRARY_PATH=libdir), timeout=60)
said = [l for l in out.splitlines() if "on target" in l]
check(rc == 0 and said, f"the bot runs: {said[0] if said else ''}",
      out[-1500:])
try:
    with open(os.path.join(bundle, "summary.json")) as f:
        s = json.load(f)
    fr = s["frames"]
    check(s["frame_hz"] == 60 and 220 <= fr["captured"] <= 260 and fr["in_flight"] == 0
          and fr["captured"] == fr["executed"] + sum(fr["dropped"].values()),
          f"60 FPS for 4 s: {fr['captured']} captured, {fr['executed']} executed")
    check(set(s["stages"]) >= {"sense", "classify", "choose", "act"},
          f"its own stages in the bundle: {sorted(s['stages'])}")
    check(s["cache"]["publications"] >= 2 and s["cache"]["l1_hits"] + s["cache"]["l2_hits"] > 0,
          f"its planner published {s['cache']['publications']} snapshots; "
          f"{s['cache']['l1_hits'] + s['cache']['l2_hits']} hits")
    for name in ("latency.hlog", "latency.svg", "metrics.prom", "trace.json"):
        check(os.path.getsize(os.path.join(bundle, name)) > 0, f"bundle has {name}")
except (OSError, KeyError, ValueError) as x:
    check(False, "the bundle's summary.json", str(x))

# Its record, replayed through its own classify and choose (reflex/replay.h).
lib_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
record = os.path.join(bundle, "record.rfx")
rc, out = run([exe, "--replay", record], env=lib_env, timeout=60)
said = [l for l in out.splitlines() if "replayed" in l]
captured = s["frames"]["captured"] if failures == 0 else -1
check(rc == 0 and said and f"replayed {captured} frames: {captured} identical, 0 differ"
      in said[0], f"its record replays through its own stages: {said[0] if said else ''}",
      out[-1500:])
# A what-if: choose without its L2 table. Every frame an L2 entry answered
# now misses and holds: exactly summary.json's L2 hits differ.
rc, out = run([exe, "--replay", record, "--without-l2"], env=lib_env, timeout=60)
said = [l for l in out.splitlines() if "replayed" in l]
l2 = s["cache"]["l2_hits"] if failures == 0 else -1
listed = [l for l in out.splitlines() if l.startswith("  frame ")]
check(rc == 1 and said and said[0].endswith(f", {l2} differ") and l2 > 0
      and len(listed) == min(3, l2) and all("(L2, generation" in l for l in listed),
      f"without L2, the {l2} frames L2 answered differ: {said[0] if said else ''}; "
      f"{listed[0].strip() if listed else ''}", out[-1500:])
# reflex replay knows only its built-in stages, and says what to use instead.
rc, out = run([os.path.join(prefix, "bin", "reflex"), "replay", record], env=lib_env, timeout=60)
check(rc == 2 and "(sense, classify, choose, act, telemetry) has no built-in pattern and decide "
      "stages: a bot's own stages replay with rfx_replay" in out
      and "differences" not in out, f"reflex replay on the bot's record: exit {rc}",
      out[-500:])
rc, out = run([exe, "--replay", os.path.join(bundle, "summary.json")], env=lib_env, timeout=60)
check(rc == 2 and "not a reflex record" in out, f"a file that is no record: exit {rc}: "
      f"{out.strip()[:200]}")
finish(failures, tmp)
