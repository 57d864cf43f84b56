#!/usr/bin/env python3
"""tools/wake_attribution.py on a small ftrace text in the kernel's own line
format: each cause is told apart, waits under the threshold are left out,
runs are split where a new set of rfx-rt* threads starts, bad input exits 2."""
import subprocess
import sys
import tempfile

TOOL = sys.argv[1]


def sw(t, cpu, prev, prev_pid, state, nxt, next_pid):
    return (f"  {prev}-{prev_pid}    [{cpu:03d}] d..2. {t:.6f}: sched_switch: prev_comm={prev} "
            f"prev_pid={prev_pid} prev_prio=120 prev_state={state} ==> next_comm={nxt} "
            f"next_pid={next_pid} next_prio=120\n")


def wk(t, cpu, by, by_pid, comm, pid):
    return (f"  {by}-{by_pid}    [{cpu:03d}] dNh3. {t:.6f}: sched_wakeup: comm={comm} pid={pid} "
            f"prio=120 target_cpu={cpu:03d}\n")


trace = "# tracer: nop\n#\n"
# run 1: rfx-rt0 (100) on cpu 0, rfx-rt1 (101) on cpu 1
trace += sw(1.000000, 0, "bash", 5, "S", "rfx-rt0", 100)
trace += sw(1.000010, 1, "bash", 6, "S", "rfx-rt1", 101)
trace += sw(1.000100, 0, "rfx-rt0", 100, "S", "swapper/0", 0)
trace += sw(1.000200, 1, "swapper/1", 0, "R", "kdamond.0", 79)
trace += wk(1.001000, 0, "<idle>", 0, "rfx-rt0", 100)            # idle vCPU: 500 us
trace += sw(1.001500, 0, "swapper/0", 0, "R", "rfx-rt0", 100)
trace += wk(1.010000, 1, "kdamond.0", 79, "rfx-rt1", 101)       # kdamond first: 1000 us
trace += sw(1.011000, 1, "kdamond.0", 79, "I", "rfx-rt1", 101)
trace += sw(1.020000, 0, "rfx-rt0", 100, "R", "rfx-plan0", 102)  # preempted: 4000 us
trace += sw(1.024000, 0, "rfx-plan0", 102, "R", "rfx-rt0", 100)
trace += sw(1.025000, 0, "rfx-rt0", 100, "S", "swapper/0", 0)
trace += wk(1.030000, 0, "<idle>", 0, "rfx-rt0", 100)            # 10 us: under threshold
trace += sw(1.030010, 0, "swapper/0", 0, "R", "rfx-rt0", 100)
trace += sw(1.040000, 0, "rfx-rt0", 100, "X", "swapper/0", 0)
trace += sw(1.040010, 1, "rfx-rt1", 101, "X", "swapper/1", 0)
# run 2: a new rfx-rt0 (200)
trace += wk(2.000000, 0, "<idle>", 0, "rfx-rt0", 200)
trace += sw(2.000000, 0, "swapper/0", 0, "R", "rfx-rt0", 200)
trace += sw(2.000100, 0, "rfx-rt0", 200, "S", "swapper/0", 0)
trace += wk(2.100000, 0, "<idle>", 0, "rfx-rt0", 200)            # 60 us
trace += sw(2.100060, 0, "swapper/0", 0, "R", "rfx-rt0", 200)

failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    failures += not cond


with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
    f.write(trace)
    f.flush()
    r = subprocess.run([sys.executable, TOOL, f.name], capture_output=True, text=True)
    print(r.stdout, end="")
    check(r.returncode == 0, f"exit 0 (got {r.returncode}: {r.stderr.strip()})")
    runs = r.stdout.split("run ")[1:]
    check(len(runs) == 2, f"two runs reported (got {len(runs)})")
    if len(runs) == 2:
        one, two = runs
        check("waits over 50 us of rfx-rt* threads: 3, 5.5 ms in all" in one,
              "run 1: three waits, 5.5 ms (the 10-us one left out)")
        check("wake from idle vCPU" in one and "max=     500 us" in one, "run 1: idle vCPU, 500 us")
        check("wake, kdamond.0 ran first" in one and "max=    1000 us" in one,
              "run 1: kdamond.0 ran first, 1000 us")
        check("preempted by rfx-plan0" in one and "max=    4000 us" in one,
              "run 1: preempted by rfx-plan0, 4000 us")
        check(one.index("preempted by rfx-plan0") < one.index("wake from idle vCPU"),
              "run 1: causes in order of total time")
        check("waits over 50 us of rfx-rt* threads: 1, 0.1 ms in all" in two
              and "wake from idle vCPU" in two and "max=      60 us" in two,
              "run 2: one idle-vCPU wait of 60 us")
    r = subprocess.run([sys.executable, TOOL, f.name, "--min-us", "5"],
                       capture_output=True, text=True)
    check("waits over 5 us of rfx-rt* threads: 4," in r.stdout,
          "--min-us 5 counts the 10-us wait too")

with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
    f.write("# tracer: nop\nnot a trace\n")
    f.flush()
    r = subprocess.run([sys.executable, TOOL, f.name], capture_output=True, text=True)
    check(r.returncode == 2 and "no sched_switch or sched_wakeup events" in r.stderr,
          f"a file with no events: exit 2 and says so (got {r.returncode}: {r.stderr.strip()})")
r = subprocess.run([sys.executable, TOOL, "/nonexistent/trace"], capture_output=True, text=True)
check(r.returncode == 2 and "/nonexistent/trace" in r.stderr,
      f"a missing file: exit 2, named (got {r.returncode}: {r.stderr.strip()})")

print(f"wake_attribution: {failures} failed")
sys.exit(1 if failures else 0)
