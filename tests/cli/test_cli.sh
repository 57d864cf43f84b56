#!/usr/bin/env bash
# CLI integration: exit codes, help, version, and 'reflex hist' on good and bad logs.
set -uo pipefail
reflex=$1
interop=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
expect_rc() { # want_rc description command...
    local want=$1 what=$2
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    [ $rc -eq "$want" ] && pass "$what (exit $rc)" || { fail "$what: exit $rc, want $want"; cat "$work/err"; }
}

expect_rc 0 "--help" "$reflex" --help
grep -q "usage: reflex" "$work/out" && pass "--help prints usage" || fail "--help text"
expect_rc 0 "--version" "$reflex" --version
grep -Eq '^reflex [0-9]+\.[0-9]+\.[0-9]+$' "$work/out" && pass "--version format" || fail "--version text"
expect_rc 2 "no command" "$reflex"
expect_rc 2 "unknown command" "$reflex" frobnicate
grep -q "unknown command 'frobnicate'" "$work/err" && pass "unknown command named" || fail "unknown command message"
expect_rc 0 "hist --help" "$reflex" hist --help
for cmd in demo run check replay hist plot; do
    expect_rc 2 "$cmd --frobnicate" "$reflex" $cmd --frobnicate
    grep -q "^reflex $cmd: unrecognized option '--frobnicate'" "$work/err" &&
        pass "$cmd: an unknown option is named with the command" || { fail "$cmd unknown option message"; cat "$work/err"; }
done
: >"$work/empty.ini"
expect_rc 0 "check --set before CONFIG" "$reflex" check --set engine.frame_hz=100 "$work/empty.ini"
grep -q "frame_hz=100 " "$work/out" && pass "check: --set before CONFIG applies" || { fail "check --set before CONFIG"; cat "$work/out"; }
expect_rc 2 "check with two configs" "$reflex" check "$work/empty.ini" "$work/empty.ini"
expect_rc 0 "demo --help" "$reflex" demo --help
grep -q "latency.svg, *$" "$work/out" && grep -q "metrics.prom, trace.json" "$work/out" &&
    pass "demo --help names every bundle file" || fail "demo --help bundle list"
grep -q "0: until SIGINT/SIGTERM" "$work/out" && pass "demo --help: --duration 0 runs until stopped" || fail "demo --help --duration text"
# --duration 0 as [engine] duration_s = 0: until SIGINT, then drained and written.
expect_rc 0 "demo --duration 0, stopped by SIGINT after 2 s" timeout --preserve-status -s INT 2 "$reflex" demo --duration 0 --quiet --out "$work/d0"
grep -q '"identity_holds": true' "$work/d0/summary.json" && grep -Eq '"duration_s": [12]\.' "$work/d0/summary.json" &&
    pass "demo --duration 0: ran until the signal, bundle written" || { fail "demo --duration 0"; head -5 "$work/d0/summary.json"; }
expect_rc 2 "demo --duration -1" "$reflex" demo --duration -1
grep -q "'-1' is not a number of seconds in \[0, 604800\]" "$work/err" && pass "--duration's range named" || { fail "--duration message"; cat "$work/err"; }
expect_rc 2 "demo --duration 0x10 (decimal only, as in a config)" "$reflex" demo --duration 0x10
grep -q "'0x10' is not a number of seconds" "$work/err" && pass "--duration in hex named" || { fail "--duration hex message"; cat "$work/err"; }
expect_rc 0 "replay --help" "$reflex" replay --help
grep -q "usage: reflex replay FILE" "$work/out" && pass "replay --help prints its usage" || fail "replay --help text"
expect_rc 2 "replay with no file" "$reflex" replay
expect_rc 2 "replay on a directory" "$reflex" replay "$work"
grep -q "Is a directory" "$work/err" && pass "replay: a directory is named as one" || { fail "replay directory message"; cat "$work/err"; }
expect_rc 2 "replay --show -1" "$reflex" replay "$work/x.rfx" --show -1
expect_rc 2 "replay --set without --config" "$reflex" replay "$work/x.rfx" --set engine.burst=4
grep -q "needs --config" "$work/err" && pass "replay: --set without --config named" || fail "replay --set message"

"$interop" gen "$work" >/dev/null
expect_rc 0 "hist on a reflex log" "$reflex" hist "$work/reflex.hlog" --tag sf3 --unit-ratio 1
cmp -s "$work/out" "$work/sf3.hgrm" && pass "hist output equals the .hgrm writer's" || fail "hist output differs"
expect_rc 2 "hist missing file" "$reflex" hist "$work/nope.hlog"
grep -q "nope.hlog: No such file" "$work/err" && pass "missing file named" || fail "missing file message"
expect_rc 2 "hist on a directory" "$reflex" hist "$work"
grep -q "read error: Is a directory" "$work/err" && pass "a directory is named as one" || { fail "directory message"; cat "$work/err"; }
expect_rc 2 "check on a directory" "$reflex" check "$work"
grep -q "Is a directory" "$work/err" && pass "a directory config is refused, not read as empty" || { fail "directory config"; cat "$work/err"; }
expect_rc 2 "run on a directory" "$reflex" run "$work" --duration 1
touch "$work/afile"
expect_rc 2 "demo --out an existing file" "$reflex" demo --duration 1 --quiet --out "$work/afile"
grep -q "cannot hold the bundle: .*afile: Not a directory" "$work/err" && pass "the out dir's problem named" || { fail "out dir message"; cat "$work/err"; }
expect_rc 2 "demo --out under a file" "$reflex" demo --duration 1 --quiet --out "$work/afile/sub"
expect_rc 2 "demo --out where no directory can be made" "$reflex" demo --duration 1 --quiet --out /proc/rfx-out
grep -q "cannot hold the bundle: cannot make a directory in /proc: " "$work/err" && pass "the ancestor that refuses is named" || { fail "unmakeable out dir message"; cat "$work/err"; }
expect_rc 2 "hist unknown tag" "$reflex" hist "$work/reflex.hlog" --tag nosuchtag
grep -q "no intervals with tag 'nosuchtag'; its tags: .*sf3" "$work/err" &&
    pass "hist: a tag with no intervals is answered with the log's tags" || { fail "hist tag list"; cat "$work/err"; }
expect_rc 2 "hist without --tag on a log whose intervals all have one" "$reflex" hist "$work/reflex.hlog"
grep -q "no intervals without a tag (what it reads when --tag is not given); its tags: .*sf3" "$work/err" &&
    pass "hist: no --tag and no untagged intervals is answered with the log's tags" || { fail "hist untagged message"; cat "$work/err"; }
expect_rc 2 "hist bad --ticks" "$reflex" hist "$work/reflex.hlog" --ticks 0
expect_rc 2 "hist bad --unit-ratio" "$reflex" hist "$work/reflex.hlog" --unit-ratio -1
expect_rc 2 "hist --unit-ratio inf" "$reflex" hist "$work/reflex.hlog" --unit-ratio inf
expect_rc 2 "hist two files" "$reflex" hist a b

head -4 "$work/reflex.hlog" > "$work/bad.hlog"
echo "Tag=x,0.000,1.000,0.000,HISTFAAAnotbase64!!" >> "$work/bad.hlog"
expect_rc 2 "hist malformed line" "$reflex" hist "$work/bad.hlog" --tag x
grep -q "bad.hlog: line 5: histogram does not decode" "$work/err" && pass "malformed line named by number" || { fail "malformed line message"; cat "$work/err"; }
head -c 300 "$work/reflex.hlog" > "$work/trunc.hlog"
expect_rc 2 "hist truncated log" "$reflex" hist "$work/trunc.hlog" --tag '*'

echo "cli: $fails failed"
[ $fails -eq 0 ]
