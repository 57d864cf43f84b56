#!/usr/bin/env python3
"""Record and replay through the reflex binary: a recorded demo replays with
every decision identical (also after SIGINT, under the ladder's
fallback-only level and with an injected failing stage); a changed decision
or snapshot in the record is found and named; a corrupt, cut or foreign
file is refused with exit 2. The record is read here with Python's own
struct and zlib, as docs/record-replay.md describes it."""
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from scratch import finish

reflex = sys.argv[1]
work = tempfile.mkdtemp(prefix="rfx-replay-")
failures = 0

HEAD = 8 + 4 + 4 + 392 + 4
FRAME = struct.Struct("<QqQQQIIBBBBBB10x")
KIND_FRAME, KIND_PUB, KIND_END = 1, 2, 3


def check(ok, what, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ' ' + detail}")
    if not ok:
        failures += 1


def run(args, **kw):
    return subprocess.run([reflex] + args, capture_output=True, text=True, **kw)


def records(data):
    """(offset, kind, body) for every record after the header."""
    assert data[:8] == b"RFXREC\r\n"
    off, out = HEAD, []
    while off < len(data):
        kind, n = struct.unpack_from("<II", data, off)
        out.append((off, kind, data[off + 8:off + 8 + n]))
        off += 12 + n
    return out


def rewrite(data, off, body):
    """data with the record at off given a new body (same length) and a valid checksum."""
    kind, n = struct.unpack_from("<II", data, off)
    assert len(body) == n
    crc = zlib.crc32(data[off:off + 8] + body) & 0xFFFFFFFF
    return data[:off + 8] + body + struct.pack("<I", crc) + data[off + 12 + n:]


def frames_of(data):
    for off, kind, body in records(data):
        if kind == KIND_FRAME:
            yield off, FRAME.unpack_from(body), body


def replay(path, *extra):
    return run(["replay", path] + list(extra))


def write(name, data):
    p = os.path.join(work, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# 1. A recorded demo replays identically; the record's counts match the run's.
d = os.path.join(work, "demo")
rec = os.path.join(d, "record.rfx")
p = run(["demo", "--duration", "6", "--out", d, "--record", rec, "--quiet"])
check(p.returncode == 0, "demo --record exits 0", p.stderr[-400:])
s = json.load(open(os.path.join(d, "summary.json")))
r = s.get("record", {})
check(r.get("frames") == s["frames"]["captured"] and r.get("frames_lost") == 0,
      f"summary.json record: {r.get('frames')} frames = {s['frames']['captured']} captured, "
      f"{r.get('frames_lost')} lost", str(r))
check(r.get("publications") == s["cache"]["publications"] and r["publications"] >= 2,
      f"record: {r.get('publications')} publications = the cache's {s['cache']['publications']}")
check(f"record: {rec}: {r.get('frames')} frames" in p.stdout, "the run prints the record line",
      p.stdout[-300:])
crit = [t for t in s["threads"] if t["critical"]]
check(s.get("allocation_tracking") is True, "jemalloc allocation counters active")
check(crit and all(t["allocated_bytes_after_start"] == 0 and t["page_faults_after_start"] == 0
          for t in crit),
      "recording: 0 bytes and 0 page faults on critical threads after start",
      str([(t["name"], t["allocated_bytes_after_start"], t["page_faults_after_start"])
           for t in crit]))
data = open(rec, "rb").read()
recs = records(data)
check(recs[-1][1] == KIND_END and sum(k == KIND_FRAME for _, k, _ in recs) == r["frames"],
      "the file: every frame record, then the end record")
p = replay(rec)
n = r["frames"]
check(p.returncode == 0 and "every decision is identical" in p.stdout
      and f"{n} frames compared ({n} decisions replayed" in p.stdout,
      f"replay: {n} of {n} decisions identical, exit 0", p.stdout + p.stderr)
print(p.stdout, end="")

# 2. A decision changed in the record is found, and named with its frame.
hits = [(off, f, body) for off, f, body in frames_of(data) if f[7] == 0 and f[12] in (1, 2)]
off, f, body = hits[len(hits) // 2]
seq, action = f[0], f[5]
new = bytearray(body)
struct.pack_into("<I", new, 40, (action + 1) % 3)
p = replay(write("action.rfx", rewrite(data, off, bytes(new))))
check(p.returncode == 1 and f"frame {seq} (byte {off}): decide chose action {action}" in p.stdout
      and "1 of" in p.stdout and "DIFFER" in p.stdout,
      f"a changed action (frame {seq}) is the one difference, exit 1", p.stdout + p.stderr)

# 3. A snapshot changed in the record changes the decision that used it.
l1hit = [(o, fr) for o, fr, _ in frames_of(data) if fr[7] == 0 and fr[12] == 1]
o, fr = l1hit[len(l1hit) // 2]
seq, key, gen, action = fr[0], fr[2], fr[4], fr[5]
done = False
for poff, kind, pbody in recs:
    if kind != KIND_PUB or struct.unpack_from("<Q", pbody)[0] != gen:
        continue
    n1, n2 = struct.unpack_from("<II", pbody, 8)
    for i in range(n1):
        if struct.unpack_from("<Q", pbody, 16 + 32 * i)[0] == key:
            nb = bytearray(pbody)
            struct.pack_into("<I", nb, 16 + 32 * i + 8, (action + 1) % 3)
            data2 = rewrite(data, poff, bytes(nb))
            done = True
    break
check(done, f"found frame {seq}'s L1 entry in generation {gen}'s publication")
if done:
    p = replay(write("snapshot.rfx", data2))
    check(p.returncode == 1 and f"frame {seq} " in p.stdout
          and f"recorded {action} (L1, generation {gen})" in p.stdout,
          f"a changed L1 entry of generation {gen} changes frame {seq}'s decision, exit 1",
          p.stdout + p.stderr)

# 4. Bad files: exit 2 with the byte offset or the reason.
flip = bytearray(data)
flip[off + 20] ^= 0x40
p = replay(write("flip.rfx", bytes(flip)))
check(p.returncode == 2 and f"byte {off}: a frame record's checksum does not match" in p.stderr,
      "a flipped byte: exit 2, checksum error at its record's offset", p.stderr)
cut = data[:recs[-1][0]]
p = replay(write("noend.rfx", cut))
check(p.returncode == 2 and "ends without its end record" in p.stderr,
      "no end record: exit 2", p.stderr)
p = replay(write("cut.rfx", data[:len(data) - 100]))
check(p.returncode == 2 and "truncated" in p.stderr, "cut inside a record: exit 2", p.stderr)
# --partial: the whole records of a cut file, and where it was cut.
p = replay(os.path.join(work, "noend.rfx"), "--partial")
check(p.returncode == 0 and f"up to byte {recs[-1][0]} (0 bytes" in p.stdout
      and "every decision is identical" in p.stdout,
      "--partial on a record without its end record: replayed, the cut named", p.stdout + p.stderr)
p = replay(os.path.join(work, "cut.rfx"), "--partial")
check(p.returncode == 0 and "bytes of a torn record after it ignored" in p.stdout
      and "every decision is identical" in p.stdout,
      "--partial on a record cut inside its last record: replayed", p.stdout + p.stderr)
p = replay(os.path.join(work, "flip.rfx"), "--partial")
check(p.returncode == 2 and "checksum does not match" in p.stderr,
      "--partial still refuses a bad checksum in a whole record", p.stderr)
p = replay(write("extra.rfx", data + b"\0" * 12))
check(p.returncode == 2 and "data after the end record" in p.stderr, "trailing data: exit 2",
      p.stderr)
p = replay(os.path.join(d, "summary.json"))
check(p.returncode == 2 and "not a reflex record" in p.stderr, "a JSON file: exit 2", p.stderr)
p = replay(os.path.join(work, "missing.rfx"))
check(p.returncode == 2 and "No such file" in p.stderr, "a missing file: exit 2", p.stderr)
p = replay(write("header.rfx", data[:200]))
check(p.returncode == 2 and "truncated in the header" in p.stderr, "a cut header: exit 2",
      p.stderr)
p = run(["demo", "--duration", "1", "--out", os.path.join(work, "x"), "--record", work])
check(p.returncode == 2 and "is a directory" in p.stderr, "--record DIR: exit 2", p.stderr)
p = run(["demo", "--duration", "1", "--out", os.path.join(work, "x"),
         "--record", os.path.join(work, "no", "such", "r.rfx")])
check(p.returncode == 2 and "no directory" in p.stderr, "--record in a missing dir: exit 2",
      p.stderr)

# 5. What-if: the same frames through another source kind's stages differ.
cfg = os.path.join(work, "synthetic.ini")
with open(cfg, "w") as f:
    f.write("[source]\nkind = synthetic\n[sink]\nkind = null\n")
p = replay(rec, "--config", cfg, "--show", "3")
check(p.returncode == 1 and "replayed as the config's" in p.stdout and "... and" in p.stdout,
      "--config with another source kind: differences listed (3 shown), exit 1",
      p.stdout[-600:] + p.stderr)

# 5b. [engine] record in a config, no option: a synthetic run at 1 kHz.
rec4 = os.path.join(work, "synthetic.rfx")
cfg2 = os.path.join(work, "synthetic-record.ini")
with open(cfg2, "w") as f:
    f.write(f"[engine]\nframe_hz = 1000\nrecord = {rec4}\n[source]\nkind = synthetic\n"
            "[sink]\nkind = null\n")
p = run(["run", cfg2, "--duration", "1", "--out", os.path.join(work, "syn"), "--quiet"])
s4 = json.load(open(os.path.join(work, "syn", "summary.json")))
p2 = replay(rec4)
check(p.returncode == 0 and p2.returncode == 0 and "every decision is identical" in p2.stdout
      and f"{s4['frames']['captured']} frames compared" in p2.stdout,
      f"[engine] record: a synthetic run of {s4['frames']['captured']} frames replays "
      "identically", p.stderr[-300:] + p2.stdout + p2.stderr)

# 5c. The replay source: the recorded frames through the live pipeline again,
# ten times faster; the run ends when they are played out, and its own
# record names the demo's stage set and replays identically.
cfg3 = os.path.join(work, "replay-source.ini")
with open(cfg3, "w") as f:
    f.write(f"[engine]\nframe_hz = 600\n[source]\nkind = replay\nfile = {rec}\n")
rec5 = os.path.join(work, "again.rfx")
d5 = os.path.join(work, "again")
p = run(["run", cfg3, "--out", d5, "--quiet", "--record", rec5])
s5 = json.load(open(os.path.join(d5, "summary.json"))) if p.returncode == 0 else {}
n = r["frames"]
check(p.returncode == 0 and f"replay source: {n} of the record's {n} frames played" in p.stdout
      and s5["frames"]["captured"] == n and s5["replay_source"]["frames_played"] == n
      and s5["frames"]["executed"] == n,
      f"replay source: the record's {n} frames played through the pipeline, all executed",
      p.stdout[-400:] + p.stderr[-400:])
p2 = replay(rec5)
check(p2.returncode == 0 and "demo source" in p2.stdout and "every decision is identical" in p2.stdout,
      "the replay source's own record names the demo's stages and replays identically",
      p2.stdout + p2.stderr)
for sets, want in ((["--set", "source.file=" + os.path.join(d, "summary.json")],
                    "not a reflex record"),
                   (["--set", "engine.payload_bytes=40"], "engine.payload_bytes is 40")):
    p = run(["run", cfg3, "--out", d5, "--quiet"] + sets)
    check(p.returncode == 2 and want in p.stderr, f"replay source, {sets[1]}: exit 2, '{want}'",
          p.stderr[-300:])
with open(os.path.join(work, "no-file.ini"), "w") as f:
    f.write("[source]\nkind = replay\n")
p = run(["run", os.path.join(work, "no-file.ini"), "--out", d5, "--quiet"])
check(p.returncode == 2 and "needs source.file" in p.stderr, "replay source without a file: exit 2",
      p.stderr[-300:])

# 6. SIGINT: the drained run's record ends cleanly and replays identically.
d2 = os.path.join(work, "sigint")
rec2 = os.path.join(d2, "record.rfx")
proc = subprocess.Popen([reflex, "demo", "--duration", "60", "--out", d2, "--record", rec2,
                         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(3)
proc.send_signal(signal.SIGINT)
out, err = proc.communicate(timeout=60)
p = replay(rec2)
check(proc.returncode == 0 and p.returncode == 0 and "every decision is identical" in p.stdout,
      "SIGINT after 3 s: the record replays identically", p.stdout + p.stderr)

# 6b. kill -9: the record holds what was drained (every 10 ms) and has no
# end record; --partial replays it.
d6 = os.path.join(work, "killed")
rec6 = os.path.join(d6, "record.rfx")
proc = subprocess.Popen([reflex, "demo", "--duration", "60", "--out", d6, "--record", rec6,
                         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(3)
proc.kill()
proc.communicate(timeout=30)
p = replay(rec6)
p2 = replay(rec6, "--partial")
m = [line for line in p2.stdout.splitlines() if "frames compared" in line]
check(p.returncode == 2 and "without its end record" in p.stderr and p2.returncode == 0
      and "every decision is identical" in p2.stdout and "no end record" in p2.stdout,
      "kill -9 after 3 s: refused without --partial (exit 2), replayed identically with it: "
      + (m[0] if m else "?"), p.stderr + p2.stdout + p2.stderr)

# 7. The ladder's fallback-only level and an injected failing pattern stage:
# decisions under fallback-only replay as such; the fault's drops are set
# apart, not compared.
d3 = os.path.join(work, "ladder")
rec3 = os.path.join(d3, "record.rfx")
p=run(["demo", "--duration", "8", "--out", d3, "--record", rec3, "--quiet",
         "--set", "budget.e2e=1,1,1", "--set", "degrade.escalate_windows=1",
         "--set", "degrade.window_intervals=1", "--set", "degrade.minimal=fallback_only",
         "--set", "degrade.moderate=fallback_only", "--set", "degrade.severe=fallback_only",
         "--set", "degrade.critical=fallback_only",
         "--set", "fault.fail_stage=pattern", "--set", "fault.fail_prob=0.2"])
check(p.returncode == 0, "ladder run exits 0", p.stderr[-500:])
d3data = open(rec3, "rb").read()
fb = sum(1 for _, fr, _ in frames_of(d3data) if fr[9] & 4)
fault = sum(1 for _, fr, _ in frames_of(d3data) if fr[7] == 4 and fr[8] == 2)
check(fb > 0 and fault > 0, f"the record holds {fb} fallback-only decisions and {fault} "
      "frames the failing pattern stage dropped")
p = replay(rec3)
check(p.returncode == 0 and "every decision is identical" in p.stdout
      and f"{fault} dropped by an injected fault" in p.stdout,
      "replay: identical; the fault's drops not compared", p.stdout + p.stderr)
print(p.stdout, end="")

finish(failures, work, "replay: ")
