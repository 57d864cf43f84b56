"""The end of a Python test: its count of failures, and its scratch
directory removed when every check passed, or kept and named when one
failed (to look at)."""
import shutil
import sys


def finish(failures, work, label=""):
    print(f"{label}{failures} failed")
    if failures:
        print(f"kept {work} to look at")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)
