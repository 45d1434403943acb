"""Shared fixtures of the integration suite.

The suite drives the real binary against a real PostgreSQL. meson hands it the paths
through the environment (test/integration/meson.build):

  SV_BINARY            the supervisor-worker executable
  SV_PLUGINS_DIR       the bundled plugins (build/plugins)
  SV_TEST_PLUGINS_DIR  the test plugins (build/test/plugins)
  SV_BUILD_ROOT, SV_SOURCE_ROOT

When they are not set (pytest run by hand), they default to <source>/build.

Fixtures, in the order a test usually meets them:

  pg                 session: the PostgreSQL server (see PostgresServer).
  make_db(migrated=True) -> Database
                     a fresh database per call, dropped after the test; migrated ones are
                     cloned from a template that `supervisor-worker migrate` built once.
  db                 make_db() for the common case.
  cli.run(*args, check=True, timeout=60, input=None, env=None) -> CompletedProcess
  daemon(*args, dsn=None, plugins_dir=None, ...) -> Daemon
                     starts `supervisor-worker run`, waits for "ready".
  make_plugins_dir(*names) -> Path
                     a directory holding copies of just the named plugins.
  wait_until(predicate, timeout=10, interval=0.05, message=None)
  sv_paths           the paths above.

Every process the fixtures run fails its test when its output holds a sanitizer report.
"""

import getpass
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import types
from pathlib import Path

import psycopg
import pytest

from svtest import find_pg_bindir, free_port, make_dsn, sanitizer_report, tail
from svtest import wait_until as _wait_until

# --------------------------------------------------------------------------------------
# Paths handed over by meson.

_SOURCE_ROOT = Path(os.environ.get("SV_SOURCE_ROOT") or Path(__file__).resolve().parents[2])
_BUILD_ROOT = Path(os.environ.get("SV_BUILD_ROOT") or _SOURCE_ROOT / "build")

PATHS = types.SimpleNamespace(
    source_root=_SOURCE_ROOT,
    build_root=_BUILD_ROOT,
    binary=Path(os.environ.get("SV_BINARY") or _BUILD_ROOT / "core" / "supervisor-worker"),
    plugins_dir=Path(os.environ.get("SV_PLUGINS_DIR") or _BUILD_ROOT / "plugins"),
    test_plugins_dir=Path(
        os.environ.get("SV_TEST_PLUGINS_DIR") or _BUILD_ROOT / "test" / "plugins"
    ),
)


def _require_binary():
    if not os.access(PATHS.binary, os.X_OK):
        pytest.fail(
            f"supervisor-worker binary not found at {PATHS.binary}: run the suite with "
            "`meson test -C build`, or set SV_BINARY",
            pytrace=False,
        )
    return str(PATHS.binary)


def pytest_configure(config):
    # meson (and CI runners) stop a test that runs too long with SIGTERM. Turn it into
    # KeyboardInterrupt so pytest runs the teardowns: they stop the daemons and the
    # throwaway PostgreSQL instead of leaving them running.
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # When a test fails, show the end of each of its daemons' logs under the failure: the
    # daemon's own account is usually what explains it.
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "teardown"):
        for d in getattr(item, "_sv_daemons", ()):
            if d.log_path.exists():
                report.sections.append(
                    (f"{d.log_path.name} (pid {d.pid}), last lines", tail(d.log(), 60))
                )


def _fail_on_sanitizer(text, what):
    report = sanitizer_report(text)
    if report:
        pytest.fail(f"sanitizer report from {what}:\n{report}", pytrace=False)


# --------------------------------------------------------------------------------------
# PostgreSQL.


class _Server:
    """What both kinds of server share: connection strings and connections."""

    host: str
    port: int
    user: str
    managed: bool

    def dsn(self, dbname="postgres"):
        """A libpq connection string for dbname on this server."""
        return make_dsn(host=self.host, port=self.port, user=self.user, dbname=dbname)

    def connect(self, dbname="postgres", **kwargs):
        """A psycopg connection in autocommit mode; close it (or use it in a with-block)."""
        return psycopg.connect(self.dsn(dbname), autocommit=True, **kwargs)

    def execute(self, sql, params=None, dbname="postgres"):
        """Run one statement on a fresh connection; returns its rows ([] for none)."""
        with self.connect(dbname) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []


class PostgresServer(_Server):
    """A throwaway cluster in a temporary directory, owned by this test session.

    initdb'd with trust authentication and fsync and full_page_writes off: the data lives
    only as long as the session, and survives a crash of the server (not of the machine).
    Listens on 127.0.0.1 on a free port and keeps its unix socket inside the directory.
    When the tests run as root, initdb, pg_ctl and postgres run as the `postgres` user.
    """

    managed = True
    user = "postgres"  # the bootstrap superuser, whatever the OS user

    def __init__(self):
        self.bindir = find_pg_bindir()
        self.host = "127.0.0.1"
        self.port = None
        self._as_postgres = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs a `postgres` user to run the server")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="sv-pg-"))
        if owner:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            # The server must reach its directory through every parent.
            if subprocess.run(self._as_postgres + ["test", "-w", str(self.dir)]).returncode:
                raise RuntimeError(
                    f"user postgres cannot write {self.dir}; set TMPDIR to a directory "
                    "it can reach, such as /tmp"
                )
        self.datadir = self.dir / "data"
        self.socket_dir = self.dir / "socket"
        self.logfile = self.dir / "postgres.log"
        self._ctl_out = self.dir / "pg_ctl.out"

    # -- running the server binaries

    def _run(self, *cmd, timeout=120):
        """Run a server binary (as postgres when root); its output goes to pg_ctl.out.

        Not through a pipe: a postmaster started by pg_ctl would inherit it and the
        read would never see EOF.
        """
        with open(self._ctl_out, "ab") as out:
            return subprocess.run(
                self._as_postgres + [os.path.join(self.bindir, cmd[0]), *cmd[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,  # postgres cannot chdir back into /root
                timeout=timeout,
            ).returncode

    def _diagnostics(self):
        parts = []
        for f in (self._ctl_out, self.logfile):
            if f.exists():
                parts.append(f"--- {f}:\n{tail(f.read_text(errors='replace'), 40)}")
        return "\n".join(parts)

    def _write_settings(self):
        # Kept in a file of their own (included from postgresql.conf) so that a retry on
        # another port can rewrite them.
        (self.datadir / "sv_test.conf").write_text(
            f"listen_addresses = '{self.host}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "max_connections = 200\n"
            # Durability off for speed: the data only has to survive the session.
            "fsync = off\n"
            "full_page_writes = off\n"
            # But synchronous_commit stays on. With fsync off it costs nothing measurable,
            # and off, a `pg_ctl stop -m immediate` (the fault tests' "crash") would lose
            # the last ~0.6 s of commits the client was told had succeeded, so a test
            # counting jobs across a restart would blame the daemon for the server's loss.
            "synchronous_commit = on\n"
            "log_line_prefix = '%m [%p] %q%u@%d '\n"
            "log_min_messages = warning\n"
        )

    def init(self):
        self.socket_dir.mkdir()
        if self._as_postgres:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        rc = self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "--auth=trust",
            "--no-locale",
            "--encoding=UTF8",
            "--no-sync",
        )
        if rc != 0:
            raise RuntimeError(f"initdb failed ({rc}):\n{self._diagnostics()}")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\ninclude = 'sv_test.conf'\n")
        self.port = free_port()
        self._write_settings()

    # -- the controls fault tests use

    def start(self):
        """Start the server and wait until it accepts connections."""
        for attempt in range(3):
            log_size = self.logfile.stat().st_size if self.logfile.exists() else 0
            rc = self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir), "-l", str(self.logfile)
            )
            if rc == 0:
                return
            # Another process may have taken the port between free_port() and now.
            new_log = self.logfile.read_bytes()[log_size:].decode(errors="replace")
            if "could not bind" in new_log or "already in use" in new_log:
                self.port = free_port()
                self._write_settings()
                continue
            break
        raise RuntimeError(f"PostgreSQL did not start ({rc}):\n{self._diagnostics()}")

    def stop(self, mode="fast"):
        """Stop the server: mode is pg_ctl's smart, fast or immediate."""
        rc = self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.datadir))
        if rc != 0:
            raise RuntimeError(f"pg_ctl stop -m {mode} failed ({rc}):\n{self._diagnostics()}")

    def restart(self, mode="fast"):
        """Stop and start again on the same port; open connections are cut."""
        # Not `pg_ctl restart`: it has no -l, so the new postmaster would log to our stdout.
        self.stop(mode)
        self.start()

    def is_running(self):
        return self._run("pg_ctl", "status", "-D", str(self.datadir)) == 0

    def log(self):
        """The server's log, for a failing test to show."""
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def destroy(self):
        try:
            if self.datadir.exists() and self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class ExternalServer(_Server):
    """The server $PGHOST names (with PGPORT, PGUSER, PGPASSWORD... from the environment)."""

    managed = False

    def __init__(self):
        self.host = os.environ["PGHOST"]
        self.port = int(os.environ.get("PGPORT", "5432"))
        self.user = os.environ.get("PGUSER") or getpass.getuser()

    def _not_ours(self, *args, **kwargs):
        pytest.skip("needs a PostgreSQL the session controls; PGHOST names an external one")

    start = stop = restart = _not_ours

    def is_running(self):
        return True

    def log(self):
        return ""


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL server: .host .port .user .dsn(dbname) .connect(dbname)
    .execute(sql, params, dbname) .start() .stop(mode) .restart(mode) .managed"""
    if os.environ.get("PGHOST"):
        yield ExternalServer()
        return
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


# --------------------------------------------------------------------------------------
# Databases.

# On an external server other sessions may be creating databases too: keep names apart.
_DB_PREFIX = "" if not os.environ.get("PGHOST") else f"p{os.getpid()}_"
_db_numbers = itertools.count(1)


class Database:
    """One database of the test: .name .dsn .connect() .query(sql, params) .scalar(...)"""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.dsn = server.dsn(name)
        self.dropped = False

    def connect(self, **kwargs):
        """A new psycopg connection in autocommit mode; close it (or use a with-block)."""
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def query(self, sql, params=None):
        """Run one statement on a fresh connection and return its rows as tuples.

        A fresh connection each time, so that it keeps working across a server restart.
        Use connect() for many statements in a row.
        """
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql, params=None):
        """The first column of the first row (None when there is no row)."""
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def drop(self):
        """Drop the database, cutting off whoever is still connected (PostgreSQL 13+)."""
        if self.dropped:
            return
        if self.server.managed and not self.server.is_running():
            self.server.start()  # a fault test left the server down
        _drop_database(self.server, self.name)
        self.dropped = True

    def __repr__(self):
        return f"<Database {self.name}>"


def _run_migrate(dsn):
    binary = _require_binary()
    proc = subprocess.run(
        [binary, "migrate", "--dsn", dsn], capture_output=True, text=True, timeout=120
    )
    _fail_on_sanitizer(proc.stderr, "supervisor-worker migrate")
    if proc.returncode != 0:
        raise RuntimeError(
            f"`supervisor-worker migrate` failed with status {proc.returncode}:\n"
            f"{proc.stderr}{proc.stdout}"
        )


def _drop_database(server, name):
    """Drop a database, template or not, cutting off whoever is connected (PostgreSQL 13+)."""
    rows = server.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,))
    if rows and rows[0][0]:
        server.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_db(pg):
    """The name of a database that `supervisor-worker migrate` has run on, once per session."""
    name = f"{_DB_PREFIX}sv_template"
    _drop_database(pg, name)  # left over by an interrupted run against an external server
    pg.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        _run_migrate(pg.dsn(name))
        # Nobody may connect to it any more: CREATE DATABASE ... TEMPLATE needs it idle.
        pg.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        yield name
    finally:
        if pg.managed and not pg.is_running():
            pg.start()
        _drop_database(pg, name)


@pytest.fixture
def make_db(request, pg):
    """make_db(migrated=True) -> Database: a new database, dropped after the test.

    migrated=True clones the migrated template (fast); migrated=False makes an empty one
    (for tests of migrate itself).
    """
    made = []

    def make(migrated=True):
        template = request.getfixturevalue("template_db") if migrated else "template0"
        name = f"{_DB_PREFIX}test_{next(_db_numbers)}"
        pg.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        database = Database(pg, name)
        made.append(database)
        return database

    yield make
    for database in made:
        database.drop()


@pytest.fixture
def db(make_db):
    """A fresh, migrated database for this test (see Database)."""
    return make_db()


# --------------------------------------------------------------------------------------
# Running the binary.


@pytest.fixture(scope="session")
def sv_paths():
    """.binary .plugins_dir .test_plugins_dir .build_root .source_root (pathlib.Path)"""
    return PATHS


class Cli:
    """Runs the supervisor-worker binary for one command and returns its result."""

    def run(self, *args, check=True, timeout=60, input=None, env=None):
        """Run `supervisor-worker ARGS...` -> CompletedProcess (text stdout and stderr).

        check=True fails the test unless the exit status is 0. The test fails in any case
        when stderr holds a sanitizer report. env adds to (or, with None values, removes
        from) the inherited environment.
        """
        binary = _require_binary()
        proc = subprocess.run(
            [binary, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            env=_merge_env(env),
        )
        _fail_on_sanitizer(proc.stderr, f"supervisor-worker {' '.join(map(str, args))}")
        if check and proc.returncode != 0:
            pytest.fail(
                f"supervisor-worker {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}",
                pytrace=False,
            )
        return proc

    __call__ = run


def _merge_env(extra):
    env = dict(os.environ)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


@pytest.fixture(scope="session")
def cli():
    """cli.run(*args, check=True, timeout=60, input=None, env=None) -> CompletedProcess"""
    return Cli()


class Daemon:
    """One `supervisor-worker run` process, its stdout and stderr in a log file."""

    def __init__(self, argv, log_path, env):
        self.argv = argv
        self.log_path = log_path
        with open(log_path, "ab") as log:
            # stdout and stderr share one O_APPEND file, so lines keep their order.
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )

    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        """The exit status once it exited (negative: killed by that signal), else None."""
        return self.proc.poll()

    def running(self):
        return self.proc.poll() is None

    def log(self):
        """Everything the daemon wrote so far."""
        return self.log_path.read_text(errors="replace")

    def mark(self):
        """A position in the log; pass it as since= to wait only for what comes after."""
        return len(self.log())

    def wait_for_log(self, pattern, timeout=10.0, since=0):
        """Wait until the log (from position since on) matches the regex pattern.

        Returns the re.Match. Fails the test, showing the log, on timeout or when the
        daemon exits without ever writing it.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None  # checked before reading: no lost lines
            m = regex.search(self.log(), since)
            if m:
                return m
            if exited:
                pytest.fail(
                    f"daemon exited ({self.proc.returncode}) without logging /{pattern}/:\n"
                    f"{tail(self.log())}",
                    pytrace=False,
                )
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"daemon did not log /{pattern}/ within {timeout:g}s:\n{tail(self.log())}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30.0):
        """Wait for the daemon to exit and return its status; fails the test on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"daemon (pid {self.pid}) still running after {timeout:g}s:\n{tail(self.log())}",
                pytrace=False,
            )

    def stop(self, timeout=30.0):
        """SIGTERM, then wait for the exit and return its status."""
        if self.running():
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        """SIGKILL, and reap it."""
        if self.running():
            self.proc.kill()
        return self.proc.wait()

    def sanitizer_report(self):
        return sanitizer_report(self.log())

    def __repr__(self):
        return f"<Daemon pid {self.pid} log {self.log_path}>"


@pytest.fixture
def daemon(request, tmp_path):
    """daemon(*args, dsn=None, plugins_dir=None, ...) -> Daemon, running and ready.

    Starts `supervisor-worker run --dsn DSN --plugins-dir DIR ARGS...` with its output in
    tmp_path/daemon-N.log and waits until the log shows "ready". dsn defaults to the `db`
    fixture's, plugins_dir to the bundled plugins. At teardown it stops every daemon still
    running (SIGTERM, SIGKILL after 15 s) and fails the test if any log holds a sanitizer
    report.

    Other keywords: wait_ready=True, ready_pattern=r"\\bready\\b", ready_timeout=15,
    env={...} (added to the environment), wrapper=[...] (a command prefix such as
    valgrind), command=[...] (run this instead of the binary, for testing the harness).
    """
    daemons = []
    request.node._sv_daemons = daemons  # for pytest_runtest_makereport

    def start(
        *args,
        dsn=None,
        plugins_dir=None,
        wait_ready=True,
        ready_pattern=r"\bready\b",
        ready_timeout=15.0,
        env=None,
        wrapper=(),
        command=None,
    ):
        if command is None:
            if dsn is None:
                dsn = request.getfixturevalue("db").dsn
            command = [
                _require_binary(),
                "run",
                "--dsn",
                dsn,
                "--plugins-dir",
                str(plugins_dir or PATHS.plugins_dir),
                *map(str, args),
            ]
        log_path = tmp_path / f"daemon-{len(daemons) + 1}.log"
        d = Daemon([*wrapper, *command], log_path, _merge_env(env))
        daemons.append(d)
        if wait_ready:
            d.wait_for_log(ready_pattern, timeout=ready_timeout)
        return d

    yield start

    reports = []
    for d in daemons:
        if d.running():
            d.signal(signal.SIGTERM)
            try:
                d.proc.wait(15)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        report = d.sanitizer_report()
        if report:
            reports.append(f"--- {d.log_path} (pid {d.pid}):\n{report}")
    if reports:
        pytest.fail("sanitizer report in daemon output:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def make_plugins_dir(tmp_path):
    """make_plugins_dir(*names) -> Path: a new directory with copies of the named plugins.

    A name is a file name without ".so", looked up in the test plugins, then the bundled
    ones. For tests that need an exact set of job types.
    """
    counter = itertools.count(1)

    def make(*names):
        target = tmp_path / f"plugins-{next(counter)}"
        target.mkdir(mode=0o755)
        for name in names:
            for d in (PATHS.test_plugins_dir, PATHS.plugins_dir):
                src = d / f"{name}.so"
                if src.exists():
                    shutil.copy(src, target / src.name)
                    break
            else:
                pytest.fail(
                    f"no plugin {name}.so in {PATHS.test_plugins_dir} or {PATHS.plugins_dir}",
                    pytrace=False,
                )
        return target

    return make


@pytest.fixture(scope="session")
def wait_until():
    """wait_until(predicate, timeout=10, interval=0.05, message=None) -> predicate's value"""
    return _wait_until
