"""Stopping `supervisor-worker run` (issue 3): SIGTERM/SIGINT stop claiming, let running
jobs finish within --shutdown-timeout, hand the rest back without spending an attempt and
exit 0; a second signal exits at once and leaves the jobs for rescue."""

import json
import signal
import time

import pytest
from psycopg.rows import dict_row

from svtest import tail, wait_until

FAST = ("--poll-interval", "50ms")


@pytest.fixture
def testjobs(make_plugins_dir):
    return make_plugins_dir("testjobs")


def enqueue(db, type_, payload=None, **kw):
    args = ["%s", "%s::jsonb"] + [f"{k} => %s" for k in kw]
    params = [type_, json.dumps(payload if payload is not None else {}), *kw.values()]
    return db.scalar(f"SELECT sv_enqueue({', '.join(args)})", params)


def jobs(db, ids):
    with db.connect(row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM sv_jobs WHERE id = ANY(%s) ORDER BY id", (list(ids),)
        ).fetchall()


def wait_running(db, ids, timeout=5):
    wait_until(
        lambda: db.scalar(
            "SELECT count(*) FROM sv_jobs WHERE id = ANY(%s) AND state = 'running'", (list(ids),)
        )
        == len(ids),
        timeout=timeout,
        message=f"jobs {ids} running",
    )


def stop_and_time(d, sig=signal.SIGTERM, timeout=15):
    t0 = time.monotonic()
    d.signal(sig)
    rc = d.wait(timeout=timeout)
    return rc, time.monotonic() - t0


def assert_clean_exit(d):
    log = d.log()
    assert "event loop did not close cleanly" not in log, tail(log)
    assert "stopped:" in log, tail(log)


def test_sigterm_lets_running_jobs_finish(db, daemon, testjobs):
    ids = [enqueue(db, "test.sleep", {"ms": 800}) for _ in range(4)]
    d = daemon(*FAST, "--max-workers", "4", "--shutdown-timeout", "10s", plugins_dir=testjobs)
    wait_running(db, ids)
    # Enqueued after the four started: SIGTERM comes before it can run, so it must not be
    # claimed (or, if a prefetch took it, it must be given back untouched).
    extra = enqueue(db, "test.sleep", {"ms": 800})
    rc, took = stop_and_time(d)
    assert rc == 0, tail(d.log())
    assert took < 5
    rows = jobs(db, ids)
    assert [(r["state"], r["attempts"], r["errors"], r["owner"]) for r in rows] == [
        ("succeeded", 1, [], None)
    ] * 4, rows
    [x] = jobs(db, [extra])
    assert (x["state"], x["attempts"], x["errors"], x["owner"]) == ("queued", 0, [], None), x
    assert "no new claims" in d.log()
    assert_clean_exit(d)
    assert db.scalar("SELECT stopped_at IS NOT NULL FROM sv_workers") is True


def test_sigint_is_graceful_too(db, daemon, testjobs):
    ids = [enqueue(db, "test.sleep", {"ms": 500}) for _ in range(2)]
    d = daemon(*FAST, "--max-workers", "2", plugins_dir=testjobs)
    wait_running(db, ids)
    rc, took = stop_and_time(d, signal.SIGINT)
    assert rc == 0, tail(d.log())
    assert took < 4
    assert [(r["state"], r["attempts"]) for r in jobs(db, ids)] == [("succeeded", 1)] * 2
    assert_clean_exit(d)


def test_shutdown_timeout_hands_back_without_spending_an_attempt(db, daemon, testjobs):
    ids = [enqueue(db, "test.sleep", {"ms": 10000}) for _ in range(3)]
    d = daemon(*FAST, "--max-workers", "4", "--shutdown-timeout", "300ms", plugins_dir=testjobs)
    wait_running(db, ids)
    rc, took = stop_and_time(d)
    assert rc == 0, tail(d.log())
    assert took < 8, f"took {took:.1f}s"  # the jobs would take 10 s
    rows = jobs(db, ids)
    assert [
        (r["state"], r["attempts"], r["errors"], r["owner"], r["lease_expires_at"]) for r in rows
    ] == [("queued", 0, [], None, None)] * 3, rows
    assert "handed back without spending the attempt" in d.log()
    assert_clean_exit(d)
    # Handed back means ready at once for the next supervisor.
    assert db.scalar("SELECT bool_and(run_at <= now()) FROM sv_jobs WHERE id = ANY(%s)", (ids,))


def test_shutdown_with_a_handler_ignoring_cancellation(db, daemon, testjobs):
    hang = enqueue(db, "test.hang", {"ms": 10000})
    ok = enqueue(db, "test.sleep", {"ms": 10000})
    d = daemon(
        *FAST, "--max-workers", "2", "--shutdown-timeout", "300ms", "--stuck-after", "200ms",
        plugins_dir=testjobs,
    )
    wait_running(db, [hang, ok])
    rc, took = stop_and_time(d)
    assert took < 8, f"took {took:.1f}s"  # the handlers would take 10 s
    assert rc == 0, tail(d.log())
    rows = jobs(db, [hang, ok])
    assert [(r["state"], r["attempts"], r["errors"], r["owner"]) for r in rows] == [
        ("queued", 0, [], None)
    ] * 2, rows
    assert "ignored cancellation" in d.log()


def test_second_signal_exits_at_once(db, daemon, testjobs):
    job_id = enqueue(db, "test.sleep", {"ms": 10000})
    d = daemon(*FAST, "--max-workers", "2", "--shutdown-timeout", "30s", plugins_dir=testjobs)
    wait_running(db, [job_id])
    mark = d.mark()
    d.signal(signal.SIGTERM)
    d.wait_for_log(r"no new claims", since=mark, timeout=3)
    time.sleep(0.2)
    assert d.running(), "the first SIGTERM waits for the running job"
    rc, took = stop_and_time(d, timeout=5)
    # Far sooner than the 10 s job or the 30 s grace period would allow.
    assert took < 5, f"took {took:.1f}s"
    assert rc != 0
    assert "exiting at once" in d.log()
    # Nothing was written for it: the job is left running, for rescue.
    [row] = jobs(db, [job_id])
    assert (row["state"], row["attempts"]) == ("running", 1), row
    assert row["owner"] is not None


def test_idle_daemon_stops_at_once(db, daemon, testjobs):
    d = daemon(*FAST, plugins_dir=testjobs)
    rc, took = stop_and_time(d)
    assert rc == 0 and took < 5, (rc, took)
    assert_clean_exit(d)
    assert db.scalar("SELECT stopped_at IS NOT NULL FROM sv_workers") is True
