#!/usr/bin/env python3
"""Print 'N passed, N failed[, N skipped]' from meson's test logs of the build dirs given."""
import glob
import json
import sys

passed = failed = skipped = 0
for d in sys.argv[1:]:
    for path in glob.glob(f"{d}/meson-logs/testlog*.json"):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line).get("result", "")
                if r in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif r == "SKIP":
                    skipped += 1
                else:
                    failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
