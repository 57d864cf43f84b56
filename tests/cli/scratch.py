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


class Checks:
    """Prints each check as `ok` or `FAIL` (with the detail) and counts the
    failures, for finish()."""

    def __init__(self):
        self.failures = 0

    def __call__(self, ok, what, detail=""):
        print(("ok   " if ok else "FAIL ") + what + ("" if ok else f" {detail}"))
        self.failures += not ok
        return ok
