"""Helpers shared by the integration tests and conftest.py.

Import them in a test module with ``from svtest import wait_until`` (pytest puts this
directory on sys.path because it holds the rootdir conftest.py).
"""

import re
import time

# Lines that sanitizers print when they find something. Any of them in a process's output
# fails the test that ran it.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",  # UndefinedBehaviorSanitizer: "file.c:12:3: runtime error: ..."
    "WARNING: ThreadSanitizer",
)

_MARKER_RE = re.compile("|".join(re.escape(m) for m in SANITIZER_MARKERS))


def sanitizer_report(text, max_lines=80):
    """Return the first sanitizer report in text (from its first line on), or None."""
    m = _MARKER_RE.search(text)
    if m is None:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    lines = text[start:].splitlines()
    # A report ends with its "SUMMARY: ..." line; keep up to there when it is close.
    for i, line in enumerate(lines[:max_lines]):
        if line.startswith("SUMMARY:"):
            return "\n".join(lines[: i + 1])
    return "\n".join(lines[:max_lines])


def wait_until(predicate, timeout=10.0, interval=0.05, message=None):
    """Call predicate() until it returns something truthy, and return that.

    Raises AssertionError after timeout seconds, naming message (or the predicate) and
    the last value it returned, so a failing test says what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what} (last value: {value!r})"
            )
        time.sleep(interval)


def tail(text, lines=60):
    """The last lines of text, for failure messages."""
    return "\n".join(text.splitlines()[-lines:])
