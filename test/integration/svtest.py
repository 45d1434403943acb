"""Helpers shared by the integration tests and conftest.py.

Import them in a test module with ``from svtest import wait_until`` (pytest puts this
directory on sys.path because it holds the rootdir conftest.py).
"""

import glob
import os
import re
import shutil
import socket
import subprocess
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


# PostgreSQL helpers, shared with test/bench/bench.py.


def quote_dsn_value(value):
    """Quote a value for a libpq key=value connection string when it needs it."""
    value = str(value)
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_dsn(**params):
    return " ".join(f"{k}={quote_dsn_value(v)}" for k, v in params.items() if v is not None)


def find_pg_bindir():
    """The directory of initdb/pg_ctl/postgres: Debian keeps them off PATH."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())

    # pg_config comes from libpq-dev and may name a version whose server is not
    # installed; fall back to the newest installed server.
    def version(path):
        m = re.search(r"/postgresql/(\d+)/", path)
        return int(m.group(1)) if m else 0

    candidates += sorted(
        (os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=version,
        reverse=True,
    )
    if shutil.which("initdb"):
        candidates.append(os.path.dirname(shutil.which("initdb")))
    for d in candidates:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in ("initdb", "pg_ctl", "postgres")):
            return d
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; install the "
        "postgresql package, or point PGHOST at a running server"
    )


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
