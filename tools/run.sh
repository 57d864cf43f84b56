#!/usr/bin/env bash
# The two commands of README.md, and the perf build.
#   tools/run.sh demo [ARGS]  install what is missing, build (release), run 'reflex demo ARGS'
#   tools/run.sh test    install what is missing, build, run every test suite
#                        (plain build, then ASan+UBSan and TSan builds)
#   tools/run.sh bench   install what is missing (DPDK too), build, run the benchmarks
# Set RFX_LONG=1 with 'test' to run the stress tests at full length (--long).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

# Debian packages: build and link, tests, the HdrHistogram interop oracle, and
# the real readers of what reflex writes (promtool and a Prometheus server,
# rsvg-convert and xmllint; Node.js for Chrome DevTools' trace engine).
pkgs=(build-essential pkg-config meson ninja-build python3
      liburcu-dev libck-dev libjemalloc-dev libcriterion-dev libinih-dev
      zlib1g-dev systemtap-sdt-dev
      default-jdk-headless libhdrhistogram-java
      prometheus librsvg2-bin libxml2-utils linux-perf binutils)
if [ "$mode" = bench ] || [ "$mode" = demo ]; then pkgs+=(libdpdk-dev); fi
# Node.js and npm for the test that reads trace.json with Chrome DevTools'
# trace engine (an npm package); a Node.js from elsewhere (one that brings its
# own npm) is used as it is.
if [ "$mode" = test ] && ! { command -v node && command -v npm; } >/dev/null; then
    pkgs+=(nodejs npm)
fi

install_missing() {
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}

# configure DIR [meson options...]: set up once, reconfigure after that.
configure() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    echo "== building $dir"
    if ! ninja -C "$dir" >"$dir/build-output.log" 2>&1; then
        cat "$dir/build-output.log"
        echo "== build of $dir failed" >&2
        return 1
    fi
}

run_tests() {
    local dir=$1
    shift
    rm -f "$dir"/meson-logs/testlog*.json
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
}

case "$mode" in
test)
    install_missing
    if [ "${RFX_LONG:-0}" = 1 ]; then export RFX_STRESS_LONG=1; fi
    configure build -Dwerror=true -Dbuildtype=debugoptimized
    configure build-asan -Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
    configure build-tsan -Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
    status=0
    echo "== tests (plain build: every suite)"
    run_tests build || status=1
    echo "== tests (ASan+UBSan: unit, stress and fuzz corpora)"
    run_tests build-asan --setup asan --suite unit --suite stress --suite fuzz || status=1
    # TSan: the stress suite only; Criterion cannot start under TSan
    # (Snaipe/Criterion#274), see tests/meson.build.
    echo "== tests (TSan: stress)"
    run_tests build-tsan --setup tsan --suite stress || status=1
    python3 tools/test_summary.py build build-asan build-tsan
    exit $status
    ;;
demo)
    install_missing
    configure build-perf -Dbuildtype=release -Dwerror=true
    shift
    exec build-perf/tools/reflex demo "$@"
    ;;
bench)
    install_missing
    configure build-perf -Dbuildtype=release -Dwerror=true
    meson test -C build-perf --benchmark --print-errorlogs --verbose --num-processes 1 |
        grep -E '^SUMMARY|^ *[0-9]+/[0-9]+ |^Ok:|^Fail:' || true
    ;;
*)
    echo "usage: tools/run.sh demo|test|bench" >&2
    exit 2
    ;;
esac
