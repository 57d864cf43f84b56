#!/usr/bin/env bash
# HdrHistogram interop, both ways, against the Java reference (Debian's
# libhdrhistogram-java 2.1.11):
#  1. reflex writes a log; Java's HistogramLogReader gives the same percentiles
#     (50, 90, 99, 99.9, 99.99, max) per tag, and HistogramLogProcessor prints
#     the same .hgrm, byte for byte, as reflex's writer.
#  2. Java writes a log; reflex reads it to Java's percentiles and .hgrm.
set -uo pipefail
bin=$1
src=$2
jar=/usr/share/java/hdrhistogram.jar
if ! command -v java >/dev/null || [ ! -f "$jar" ]; then
    echo "hdr_interop: needs java and $jar (Debian: default-jdk-headless libhdrhistogram-java;" \
         "tools/run.sh test installs them)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/r" "$work/j"
fail=0

echo "== reflex writes, HdrHistogram reads"
"$bin" gen "$work/r" || exit 1
java -cp "$jar" "$src/HdrInterop.java" percentiles "$work/r/reflex.hlog" "$work/r/java_view.txt" || exit 1
tags=0
while read -r tag rest; do
    tags=$((tags + 1))
    jline=$(grep "^$tag " "$work/r/java_view.txt" || true)
    if [ "$jline" != "$tag $rest" ]; then
        echo "percentiles DIFFER for $tag: reflex '$tag $rest' java '$jline'"
        fail=1
        continue
    fi
    java -cp "$jar" org.HdrHistogram.HistogramLogProcessor -i "$work/r/reflex.hlog" -tag "$tag" \
        -outputValueUnitRatio 1 2>/dev/null | grep -v '^#\[StartTime' > "$work/r/$tag.proc.hgrm"
    if cmp -s "$work/r/$tag.hgrm" "$work/r/$tag.proc.hgrm"; then
        echo "$tag: percentiles same ($rest), HistogramLogProcessor .hgrm identical"
    else
        echo "$tag: HistogramLogProcessor .hgrm DIFFERS from reflex's:"
        diff "$work/r/$tag.hgrm" "$work/r/$tag.proc.hgrm" | head -10
        fail=1
    fi
done < "$work/r/expected.txt"
echo "reflex->java: $tags tags checked"

echo "== HdrHistogram writes, reflex reads"
java -cp "$jar" "$src/HdrInterop.java" write "$work/j/java.hlog" "$work/j/expected.txt" "$work/j" 20261122 || exit 1
"$bin" check "$work/j/java.hlog" "$work/j/expected.txt" "$work/j" || fail=1

[ $fail -eq 0 ] && echo "hdr_interop: both directions agree" || echo "hdr_interop: FAILED"
exit $fail
