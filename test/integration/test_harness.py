"""Tests of the test harness itself: the fixtures in conftest.py must do what they promise,
or every other test's verdict means little."""

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from svtest import sanitizer_report, wait_until

HERE = Path(__file__).resolve().parent


# --- PostgreSQL -------------------------------------------------------------------------


def test_server_answers(pg):
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.host == pg.host
        assert conn.info.port == pg.port
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    if pg.managed:
        settings = dict(
            pg.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'full_page_writes', 'max_connections', "
                "'listen_addresses', 'unix_socket_directories')"
            )
        )
        assert settings["fsync"] == "off"
        assert settings["synchronous_commit"] == "on"
        assert settings["full_page_writes"] == "off"
        assert int(settings["max_connections"]) >= 200
        assert settings["listen_addresses"] == "127.0.0.1"
        # The socket lives in the session's own directory, not in /var/run/postgresql.
        assert settings["unix_socket_directories"] == str(pg.socket_dir)
        assert any(pg.socket_dir.glob(f".s.PGSQL.{pg.port}"))


def test_restart_keeps_data(pg, make_db):
    database = make_db(migrated=False)
    database.query("CREATE TABLE kept (v int)")
    database.query("INSERT INTO kept SELECT generate_series(1, 100)")
    started = pg.execute("SELECT pg_postmaster_start_time()")[0][0]
    held = database.connect()

    pg.restart()

    # A new postmaster, the old connections cut, the data still there.
    assert pg.execute("SELECT pg_postmaster_start_time()")[0][0] > started
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    assert database.scalar("SELECT count(*) FROM kept") == 100


def test_restart_immediate_keeps_committed_data(pg, make_db):
    # The fault tests crash the server; what it acknowledged must survive that (see the
    # synchronous_commit note in conftest.py): crash recovery replays the WAL that the OS
    # still holds even with fsync off.
    database = make_db(migrated=False)
    database.query("CREATE TABLE kept AS SELECT generate_series(1, 10) AS v")
    pg.restart(mode="immediate")
    assert database.scalar("SELECT sum(v) FROM kept") == 55


def test_stop_and_start(pg):
    pg.stop()
    try:
        assert not pg.is_running()
        with pytest.raises(psycopg.OperationalError):
            pg.connect(connect_timeout=2)
    finally:
        pg.start()
    assert pg.execute("SELECT 1") == [(1,)]


def test_databases_are_isolated(make_db):
    a = make_db(migrated=False)
    b = make_db(migrated=False)
    assert a.name != b.name
    assert a.scalar("SELECT current_database()") == a.name
    assert b.scalar("SELECT current_database()") == b.name
    a.query("CREATE TABLE only_in_a (v int)")
    assert a.scalar("SELECT to_regclass('only_in_a')") is not None
    assert b.scalar("SELECT to_regclass('only_in_a')") is None


def test_drop_cuts_off_connections(pg, make_db):
    database = make_db(migrated=False)
    held = database.connect()
    database.drop()
    assert pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database.name,)) == []
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()


def test_template_has_the_schema(db):
    # db is cloned from the template that `supervisor-worker migrate` built.
    for table in ("sv_jobs", "sv_workers", "sv_migrations"):
        assert db.scalar("SELECT to_regclass(%s)", (table,)) is not None, table
    assert db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'sv_enqueue'") >= 1
    assert db.scalar("SELECT count(*) FROM sv_jobs") == 0


def test_each_test_gets_its_own_database(db, make_db):
    other = make_db()
    db.query("CREATE TABLE mine (v int)")
    assert other.scalar("SELECT to_regclass('mine')") is None
    assert other.scalar("SELECT to_regclass('sv_jobs')") is not None


# --- helpers ----------------------------------------------------------------------------


def test_wait_until_returns_the_value():
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) if len(calls) >= 3 else None

    assert wait_until(third_time, timeout=5, interval=0.01) == 3


def test_wait_until_times_out():
    start = time.monotonic()
    with pytest.raises(AssertionError, match="the impossible"):
        wait_until(lambda: False, timeout=0.3, interval=0.05, message="the impossible")
    assert 0.3 <= time.monotonic() - start < 3


def test_sanitizer_report_finds_each_kind():
    asan = textwrap.dedent(
        """\
        2024-01-01 info: supervisor ready
        =================================================================
        ==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010
            #0 0x55 in sv__job_free core/job.c:42
        SUMMARY: AddressSanitizer: heap-use-after-free core/job.c:42 in sv__job_free
        more output after the report
        """
    )
    report = sanitizer_report(asan)
    assert report.startswith("==4242==ERROR: AddressSanitizer")
    assert report.endswith("in sv__job_free")
    assert "supervisor ready" not in report

    assert sanitizer_report("==1==ERROR: LeakSanitizer: detected memory leaks\n")
    assert sanitizer_report("core/job.c:10:5: runtime error: signed integer overflow\n")
    assert sanitizer_report("WARNING: ThreadSanitizer: data race (pid=7)\n")
    assert sanitizer_report("info: job 1 (log) succeeded\ninfo: shutting down\n") is None


# --- running the binary -----------------------------------------------------------------


def test_cli_runs_the_binary(cli, sv_paths):
    out = cli.run("--version")
    assert out.stdout.startswith("supervisor-worker ")
    assert sv_paths.binary.is_file()


def test_cli_check_fails_on_nonzero_status(cli):
    with pytest.raises(pytest.fail.Exception, match="exited 2"):
        cli.run("no-such-command")
    assert cli.run("no-such-command", check=False).returncode == 2


FAKE_DAEMON = """\
#!/bin/bash
# Stands in for supervisor-worker in the harness tests.
trap 'echo "stopping on SIGTERM"; exit 7' TERM
echo "starting"
sleep 0.2
echo "supervisor ready"
while :; do
    [ -e "$1" ] && { echo "saw $1"; rm -f "$1"; }
    sleep 0.05
done
"""


def test_daemon_fixture_waits_for_ready_and_stops(daemon, tmp_path):
    script = tmp_path / "fake-daemon"
    script.write_text(FAKE_DAEMON)
    script.chmod(0o755)
    trigger = tmp_path / "trigger"

    d = daemon(command=[str(script), str(trigger)])
    assert d.running()
    assert "supervisor ready" in d.log()

    mark = d.mark()
    trigger.touch()
    m = d.wait_for_log(r"saw (\S+)", timeout=5, since=mark)
    assert m.group(1) == str(trigger)

    assert d.stop(timeout=5) == 7
    assert "stopping on SIGTERM" in d.log()
    assert not d.running()


def test_daemon_fixture_fails_fast_when_the_daemon_dies(daemon):
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited \(3\).*no such flag"):
        daemon(command=["/bin/sh", "-c", "echo 'no such flag' >&2; exit 3"], ready_timeout=30)
    assert time.monotonic() - start < 10


def test_daemon_starts_and_stops(daemon, db):
    d = daemon("--max-workers", "2")
    assert d.running()
    assert d.stop() == 0


# The sanitizer guards work in teardown, so they are tested from the outside: an inner
# pytest session with this directory's conftest.py and a fake binary that prints reports.
FAKE_BINARY = """\
#!/bin/bash
if [ "$1" = run ]; then
    trap 'exit 0' TERM
    echo "supervisor ready"
    [ "$FAKE_MODE" = asan ] && echo "==9==ERROR: AddressSanitizer: heap-buffer-overflow" >&2
    while :; do sleep 0.05; done
fi
echo "x.c:1:2: runtime error: signed integer overflow" >&2
"""

INNER_TESTS = """\
def test_cli_report(cli):
    cli.run("enqueue", "noop")

def test_daemon_report(daemon):
    daemon(dsn="unused", env={"FAKE_MODE": "asan"}).stop()

def test_daemon_clean(daemon):
    daemon(dsn="unused", env={"FAKE_MODE": "clean"})
"""


def test_sanitizer_reports_fail_the_test(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    for name in ("conftest.py", "svtest.py", "pytest.ini"):
        (inner / name).write_text((HERE / name).read_text())
    (inner / "test_inner.py").write_text(INNER_TESTS)
    fake = tmp_path / "fake-supervisor-worker"
    fake.write_text(FAKE_BINARY)
    fake.chmod(0o755)

    env = dict(os.environ, SV_BINARY=str(fake), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(inner)],
        cwd=inner,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(r"test_cli_report FAILED", out), out
    assert "runtime error: signed integer overflow" in out
    assert re.search(r"test_daemon_report ERROR", out), out  # failed in teardown
    assert "heap-buffer-overflow" in out
    assert re.search(r"test_daemon_clean PASSED", out), out
    assert not re.search(r"test_daemon_clean (ERROR|FAILED)", out), out
