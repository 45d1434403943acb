"""The PostgreSQL job queue, end to end (issue 3): jobs enqueued with SQL or the CLI, run
by `supervisor-worker run` with the real test plugins, every outcome read back from the
table. Each test bounds its own time with short flags (--poll-interval 50ms, per-job
--timeout, --stuck-after ...)."""

import collections
import json
import re
import socket
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from svtest import tail, wait_until

FAST = ("--poll-interval", "50ms")


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
def testjobs(make_plugins_dir):
    """A plugins directory holding only testjobs.so (the test.* job types)."""
    return make_plugins_dir("testjobs")


def enqueue(db, type_, payload=None, **kw):
    """sv_enqueue() through plain SQL; keyword arguments are sv_enqueue's named ones."""
    args = ["%s", "%s::jsonb"]
    params = [type_, json.dumps(payload if payload is not None else {})]
    for k, v in kw.items():
        if k == "run_at_sql":
            args.append(f"run_at => {v}")
        else:
            args.append(f"{k} => %s")
            params.append(v)
    return db.scalar(f"SELECT sv_enqueue({', '.join(args)})", params)


def job(db, job_id):
    with db.connect(row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM sv_jobs WHERE id = %s", (job_id,)).fetchone()


def jobs(db, where="true", params=None):
    with db.connect(row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM sv_jobs WHERE {where} ORDER BY id", params).fetchall()


def wait_state(db, job_id, states, timeout=10):
    states = (states,) if isinstance(states, str) else tuple(states)

    def done():
        row = job(db, job_id)
        return row if row["state"] in states else None

    return wait_until(done, timeout=timeout, message=f"job {job_id} in {states}")


def wait_all(db, states, timeout=10, where="true"):
    states = (states,) if isinstance(states, str) else tuple(states)
    return wait_until(
        lambda: db.scalar(
            f"SELECT count(*) = 0 FROM sv_jobs WHERE ({where}) AND NOT state = ANY(%s)",
            (list(states),),
        ),
        timeout=timeout,
        message=f"every job in {states}",
    )


def read_record(path):
    """The lines test.record appended: [(id, pid, attempt)] in file order."""
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def start(daemon, plugins_dir, *args, **kw):
    return daemon(*FAST, *args, plugins_dir=plugins_dir, **kw)


def one_line(text):
    lines = text.strip("\n").split("\n")
    return len(lines) == 1 and lines[0] != ""


# --- enqueue -> run -> outcome ----------------------------------------------------------


def test_echo_succeeds_with_its_result(db, cli, daemon, testjobs):
    payload = {"a": 1, "nested": {"list": [1, 2, "x"]}, "s": "h\u00e9llo"}
    out = cli.run("enqueue", "--dsn", db.dsn, "test.echo", json.dumps(payload))
    job_id = int(out.stdout.strip())
    before = job(db, job_id)
    assert before["state"] == "queued" and before["attempts"] == 0
    assert before["started_at"] is None and before["finished_at"] is None

    d = start(daemon, testjobs)
    row = wait_state(db, job_id, ("succeeded", "dead"))
    assert row["state"] == "succeeded", row
    assert row["result"] == payload
    assert row["attempts"] == 1
    assert row["errors"] == []
    assert row["owner"] is None and row["lease_expires_at"] is None
    assert row["started_at"] is not None and row["finished_at"] is not None
    assert row["created_at"] <= row["started_at"] <= row["finished_at"]
    # The claim fills in the type's default max attempts.
    assert row["max_attempts"] == 25
    assert d.running()


def test_flaky_retries_until_success(db, daemon, testjobs):
    job_id = enqueue(db, "test.flaky", {"fail_times": 2})
    d = start(daemon, testjobs)
    row = wait_state(db, job_id, ("succeeded", "dead"))
    assert row["state"] == "succeeded", row
    assert row["attempts"] == 3
    assert row["result"] == {"attempts": 3}
    assert [e["attempt"] for e in row["errors"]] == [1, 2]
    assert [e["error"] for e in row["errors"]] == ["flaky failure 1 of 2", "flaky failure 2 of 2"]
    assert all(e.get("at") for e in row["errors"])
    assert row["owner"] is None
    assert re.search(rf"job {job_id} \(test.flaky\): attempt 1 of 25 failed, retrying", d.log())


def test_dead_after_max_attempts(db, cli, daemon, testjobs):
    out = cli.run(
        "enqueue", "--dsn", db.dsn, "--max-attempts", "3", "test.flaky", '{"fail_times": 10}'
    )
    job_id = int(out.stdout)
    d = start(daemon, testjobs)
    row = wait_state(db, job_id, "dead")
    assert row["attempts"] == 3
    assert row["max_attempts"] == 3
    assert [e["attempt"] for e in row["errors"]] == [1, 2, 3]
    assert [e["error"] for e in row["errors"]] == [f"flaky failure {i} of 10" for i in (1, 2, 3)]
    assert row["finished_at"] is not None
    assert row["result"] is None and row["owner"] is None
    assert re.search(rf"job {job_id} \(test.flaky\): dead after 3 attempts", d.log())
    # Dead means dead: it is not claimed again.
    time.sleep(0.3)
    assert job(db, job_id)["attempts"] == 3


def test_permanent_failure_is_dead_after_one_attempt(db, daemon, testjobs):
    job_id = enqueue(db, "test.fail", {"reason": "the frobnicator is missing"})
    d = start(daemon, testjobs)
    row = wait_state(db, job_id, ("dead", "succeeded"))
    assert row["state"] == "dead"
    assert row["attempts"] == 1
    assert row["max_attempts"] == 25  # attempts were left: the failure itself was final
    assert len(row["errors"]) == 1
    assert row["errors"][0]["attempt"] == 1
    assert "the frobnicator is missing" in row["errors"][0]["error"]
    assert row["finished_at"] is not None
    assert re.search(rf"job {job_id} \(test.fail\): failed permanently on attempt 1", d.log())


# --- timeouts ---------------------------------------------------------------------------


def test_timeout_cooperative_handler(db, cli, daemon, testjobs):
    out = cli.run(
        "enqueue", "--dsn", db.dsn, "--timeout", "200ms", "--max-attempts", "1",
        "test.sleep", '{"ms": 5000}',
    )
    job_id = int(out.stdout)
    d = start(daemon, testjobs)
    t0 = time.monotonic()
    row = wait_state(db, job_id, ("dead", "succeeded"), timeout=4)
    assert time.monotonic() - t0 < 4
    assert row["state"] == "dead"
    assert row["attempts"] == 1
    assert [e["error"] for e in row["errors"]] == ["timed out after 200 ms"]
    assert (row["finished_at"] - row["started_at"]).total_seconds() < 2
    d.wait_for_log(rf"job {job_id} \(test.sleep\): .*timed out after 200 ms", timeout=2)
    # A cooperative handler gives its slot back: it is never reported stuck.
    time.sleep(0.3)
    assert "stuck" not in d.log()


def test_timeout_handler_ignoring_cancellation_is_reported_stuck(db, cli, daemon, testjobs):
    d = start(
        daemon, testjobs, "--max-workers", "2", "--stuck-after", "200ms",
        "--heartbeat-interval", "100ms", "--shutdown-timeout", "1s",
    )
    out = cli.run(
        "enqueue", "--dsn", db.dsn, "--timeout", "200ms", "--max-attempts", "1",
        "test.hang", '{"ms": 3000}',
    )
    hang_id = int(out.stdout)
    d.wait_for_log(rf"job {hang_id} \(test.hang\): stuck: the handler has ignored", timeout=3)
    # The attempt was failed at the deadline, while the handler still runs.
    row = job(db, hang_id)
    assert row["state"] == "dead", row
    assert [e["error"] for e in row["errors"]] == ["timed out after 200 ms"]
    # ... and counted in the workers table.
    wait_until(
        lambda: db.scalar("SELECT (status->>'stuck_jobs')::int FROM sv_workers") == 1,
        timeout=2,
        message="stuck_jobs = 1 in sv_workers.status",
    )
    # The stuck handler keeps one slot; the other one still runs jobs.
    echo_id = enqueue(db, "test.echo", {"k": "v"})
    row = wait_state(db, echo_id, "succeeded", timeout=2)
    assert row["result"] == {"k": "v"}
    assert "stuck handler returned" not in d.log()
    # When the handler finally returns its late success changes nothing.
    d.wait_for_log(rf"job {hang_id} \(test.hang\): stuck handler returned", timeout=5)
    time.sleep(0.2)
    row = job(db, hang_id)
    assert row["state"] == "dead" and row["result"] is None and len(row["errors"]) == 1
    assert d.stop(timeout=5) == 0


def test_per_job_timeout_overrides_type_default(db, cli, daemon, testjobs):
    # The type's default (60 s) lets a 600 ms sleep finish; the job's own 200 ms does not.
    plain = enqueue(db, "test.sleep", {"ms": 600}, max_attempts=1)
    short = int(
        cli.run(
            "enqueue", "--dsn", db.dsn, "--timeout", "200ms", "--max-attempts", "1",
            "test.sleep", '{"ms": 600}',
        ).stdout
    )
    assert job(db, short)["timeout_ms"] == 200
    start(daemon, testjobs)
    assert wait_state(db, plain, ("succeeded", "dead"))["state"] == "succeeded"
    row = wait_state(db, short, ("succeeded", "dead"))
    assert row["state"] == "dead"
    assert [e["error"] for e in row["errors"]] == ["timed out after 200 ms"]


def test_per_job_max_attempts_overrides_type_default(db, cli, daemon, testjobs):
    # Type default 25: fail_times 3 succeeds on attempt 4. With --max-attempts 2: dead after 2.
    plain = enqueue(db, "test.flaky", {"fail_times": 3})
    limited = int(
        cli.run(
            "enqueue", "--dsn", db.dsn, "--max-attempts", "2", "test.flaky", '{"fail_times": 3}'
        ).stdout
    )
    start(daemon, testjobs)
    row = wait_state(db, plain, ("succeeded", "dead"))
    assert (row["state"], row["attempts"], row["max_attempts"]) == ("succeeded", 4, 25)
    row = wait_state(db, limited, ("succeeded", "dead"))
    assert (row["state"], row["attempts"], row["max_attempts"]) == ("dead", 2, 2)
    assert len(row["errors"]) == 2


# --- one-shot ---------------------------------------------------------------------------


def run_one_shot(cli, db, plugins_dir, *args, timeout=30):
    t0 = time.monotonic()
    proc = cli.run(
        "run", "--one-shot", "--dsn", db.dsn, "--plugins-dir", plugins_dir, *FAST, *args,
        check=False, timeout=timeout,
    )
    return proc, time.monotonic() - t0


def test_one_shot_all_succeed_exits_0(db, cli, testjobs):
    ids = [enqueue(db, "test.echo", {"i": i}) for i in range(20)]
    proc, took = run_one_shot(cli, db, testjobs)
    assert proc.returncode == 0, proc.stderr
    rows = jobs(db)
    assert [r["id"] for r in rows] == ids
    assert all(r["state"] == "succeeded" and r["attempts"] == 1 for r in rows), rows
    assert [r["result"] for r in rows] == [{"i": i} for i in range(20)]
    assert "one-shot run done" in proc.stderr
    # The supervisor row is closed.
    assert db.scalar("SELECT count(*) FROM sv_workers WHERE stopped_at IS NOT NULL") == 1
    assert took < 10


def test_one_shot_with_a_failure_exits_1(db, cli, testjobs):
    ok = [enqueue(db, "test.echo", {"i": i}) for i in range(3)]
    bad = enqueue(db, "test.fail", {"reason": "nope"})
    proc, _ = run_one_shot(cli, db, testjobs)
    assert proc.returncode == 1, proc.stderr
    assert all(job(db, i)["state"] == "succeeded" for i in ok)
    assert job(db, bad)["state"] == "dead"
    assert "some jobs failed" in proc.stderr


def test_one_shot_skips_scheduled_and_unknown_jobs(db, cli, testjobs):
    now = enqueue(db, "test.echo", {"now": True})
    later = int(
        cli.run("enqueue", "--dsn", db.dsn, "--delay", "1h", "test.echo", '{"later": true}').stdout
    )
    unknown = enqueue(db, "no.such.type", {"x": 1})
    proc, took = run_one_shot(cli, db, testjobs)
    assert proc.returncode == 0, proc.stderr
    assert took < 10
    assert job(db, now)["state"] == "succeeded"
    for i in (later, unknown):
        row = job(db, i)
        assert (row["state"], row["attempts"], row["owner"]) == ("queued", 0, None), row


def test_one_shot_with_nothing_to_do_exits_0(db, cli, testjobs):
    proc, took = run_one_shot(cli, db, testjobs)
    assert proc.returncode == 0, proc.stderr
    assert took < 5


# --- job types and follow-ups -----------------------------------------------------------


def test_unknown_type_stays_queued_while_others_run(db, daemon, testjobs):
    unknown = enqueue(db, "no.such.type", {"x": 1})
    d = start(daemon, testjobs)
    ids = [enqueue(db, "test.echo", {"i": i}) for i in range(5)]
    for i in ids:
        wait_state(db, i, "succeeded")
    time.sleep(0.3)  # several poll intervals
    row = job(db, unknown)
    assert (row["state"], row["attempts"], row["owner"], row["errors"]) == ("queued", 0, None, [])
    assert d.running()
    assert "no.such.type" not in db.scalar("SELECT job_types FROM sv_workers")


def test_followup_jobs(db, daemon, testjobs):
    parent = enqueue(db, "test.spawn", {"children": 3})
    start(daemon, testjobs)
    assert wait_state(db, parent, ("succeeded", "dead"))["state"] == "succeeded"
    wait_until(
        lambda: db.scalar("SELECT count(*) FROM sv_jobs WHERE type = 'test.echo'") == 3, timeout=5
    )
    wait_all(db, "succeeded", timeout=5)
    children = jobs(db, "type = 'test.echo'")
    assert sorted(c["payload"]["i"] for c in children) == [0, 1, 2]
    for c in children:
        assert c["payload"] == {"parent": parent, "i": c["payload"]["i"]}
        assert c["result"] == c["payload"]
        assert c["attempts"] == 1


# --- order ------------------------------------------------------------------------------


def test_priority_then_run_at_then_id_order(db, daemon, testjobs, tmp_path):
    rec = tmp_path / "order.txt"
    p = {"file": str(rec)}
    # Priority first.
    p5 = enqueue(db, "test.record", p, priority=5)
    pm1 = enqueue(db, "test.record", p, priority=-1)
    p0 = enqueue(db, "test.record", p, priority=0)
    # Within one priority (10): run_at, then id.
    r_late = enqueue(db, "test.record", p, priority=10, run_at_sql="now() - interval '1 second'")
    r_early = enqueue(db, "test.record", p, priority=10, run_at_sql="now() - interval '3 seconds'")
    r_mid = enqueue(db, "test.record", p, priority=10, run_at_sql="now() - interval '2 seconds'")
    same_a = enqueue(db, "test.record", p, priority=20, run_at_sql="'2001-01-01T00:00:00Z'")
    same_b = enqueue(db, "test.record", p, priority=20, run_at_sql="'2001-01-01T00:00:00Z'")
    start(daemon, testjobs, "--max-workers", "1")
    wait_all(db, "succeeded", timeout=10)
    order = [r[0] for r in read_record(rec)]
    assert order == [pm1, p0, p5, r_early, r_mid, r_late, same_a, same_b]


# --- NOTIFY and transactions ------------------------------------------------------------


def test_sql_enqueue_is_transactional_and_notify_wakes_the_daemon(db, daemon, testjobs):
    # Polling every 10 s: only NOTIFY can start a job within a second.
    d = daemon("--poll-interval", "10s", plugins_dir=testjobs)
    time.sleep(0.5)  # past the claim at start-up

    with psycopg.connect(db.dsn) as conn:  # not autocommit: one transaction
        rolled = conn.execute("SELECT sv_enqueue('test.echo', '{\"a\": 1}')").fetchone()[0]
        assert rolled is not None
        conn.rollback()
    assert db.scalar("SELECT count(*) FROM sv_jobs") == 0

    with psycopg.connect(db.dsn) as conn:
        conn.execute("CREATE TABLE app_data (v int)")
        conn.execute("INSERT INTO app_data VALUES (42)")
        job_id = conn.execute("SELECT sv_enqueue('test.echo', '{\"a\": 1}')").fetchone()[0]
        time.sleep(0.3)
        # Not visible to anyone, the daemon included, before the commit.
        assert db.scalar("SELECT count(*) FROM sv_jobs") == 0
        t0 = time.monotonic()
        conn.commit()
    row = wait_state(db, job_id, "succeeded", timeout=3)
    # The poll interval is 10 s: only NOTIFY can start it this soon.
    assert time.monotonic() - t0 < 5, "NOTIFY should start the job at once"
    assert row["result"] == {"a": 1}
    assert (row["started_at"] - row["created_at"]).total_seconds() < 5
    assert db.scalar("SELECT v FROM app_data") == 42
    assert db.scalar("SELECT count(*) FROM sv_jobs") == 1
    assert d.running()


# --- bad input for run ------------------------------------------------------------------


def test_run_unknown_flag(cli, db):
    proc = cli.run("run", "--dsn", db.dsn, "--no-such-flag", check=False, timeout=10)
    assert proc.returncode == 2
    assert one_line(proc.stderr), proc.stderr
    assert "--no-such-flag" in proc.stderr
    assert db.scalar("SELECT count(*) FROM sv_workers") == 0


@pytest.mark.parametrize(
    "args",
    [
        ("--max-workers", "0"),
        ("--max-workers", "lots"),
        ("--poll-interval", "soon"),
        ("--shutdown-timeout", "-1s"),
        ("--heartbeat-interval", "5s", "--dead-after", "6s"),
        ("unexpected-argument",),
    ],
    ids=["workers0", "workers-nan", "poll", "shutdown-neg", "dead-after", "extra-arg"],
)
def test_run_bad_values_exit_2(cli, db, args):
    proc = cli.run("run", "--dsn", db.dsn, *args, check=False, timeout=10)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr), proc.stderr
    assert db.scalar("SELECT count(*) FROM sv_workers") == 0


def _unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_database_down_at_start_keeps_retrying(daemon, testjobs):
    port = _unused_port()  # nothing listens there once the socket is closed
    dsn = f"host=127.0.0.1 port={port} dbname=nothing user=postgres connect_timeout=2"
    d = daemon(dsn=dsn, plugins_dir=testjobs, wait_ready=False)
    d.wait_for_log(r"cannot connect to the database", timeout=5)
    time.sleep(2)
    assert d.running(), tail(d.log())
    t0 = time.monotonic()
    assert d.stop(timeout=5) == 0, tail(d.log())
    assert time.monotonic() - t0 < 3


def test_run_unmigrated_schema_exits_1(make_db, daemon, testjobs):
    empty = make_db(migrated=False)
    d = daemon(dsn=empty.dsn, plugins_dir=testjobs, wait_ready=False)
    assert d.wait(timeout=10) == 1, tail(d.log())
    assert re.search(r"run 'supervisor-worker migrate'", d.log()), d.log()


# --- scale: four supervisors, 10,000 jobs -----------------------------------------------


def test_four_supervisors_ten_thousand_jobs(db, daemon, testjobs, tmp_path):
    n = 10_000
    rec = tmp_path / "record.txt"
    assert (
        db.scalar(
            "SELECT count(sv_enqueue('test.record', jsonb_build_object('file', %s::text)))"
            " FROM generate_series(1, %s)",
            (str(rec), n),
        )
        == n
    )
    t0 = time.monotonic()
    ds = [start(daemon, testjobs, "--max-workers", "4") for _ in range(4)]

    deadline = time.monotonic() + 120
    while True:
        left = db.scalar("SELECT count(*) FROM sv_jobs WHERE state <> 'succeeded'")
        if left == 0:
            break
        assert time.monotonic() < deadline, f"{left} jobs left after 120 s"
        assert all(d.running() for d in ds)
        time.sleep(0.2)
    took = time.monotonic() - t0
    for d in ds:
        assert d.stop(timeout=15) == 0, tail(d.log())

    print(f"\n4 supervisors x 4 workers ran {n} test.record jobs in {took:.1f} s")
    stats = db.query(
        "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded'), min(attempts),"
        " max(attempts), count(*) FILTER (WHERE owner IS NOT NULL),"
        " count(*) FILTER (WHERE errors <> '[]')"
        " FROM sv_jobs"
    )[0]
    assert stats == (n, n, 1, 1, 0, 0), stats

    lines = read_record(rec)
    assert len(lines) == n
    per_id = collections.Counter(i for i, _, _ in lines)
    assert len(per_id) == n and set(per_id.values()) == {1}
    assert set(per_id) == {r[0] for r in db.query("SELECT id FROM sv_jobs")}
    assert {a for _, _, a in lines} == {1}
    pids = collections.Counter(p for _, p, _ in lines)
    assert set(pids) == {d.pid for d in ds}, pids
    assert db.scalar("SELECT count(*) FROM sv_workers WHERE stopped_at IS NOT NULL") == 4


def test_progress_is_written_by_heartbeats_and_with_the_success(db, cli, daemon, testjobs):
    # Reports at 0, 1/3, 2/3 (600 ms apart) and 1: heartbeats every 100 ms see the middle
    # ones; the last one, reported just before the handler returns, comes with the success.
    out = cli.run("enqueue", "--dsn", db.dsn, "test.progress", '{"ms": 600}')
    job_id = int(out.stdout)
    start(daemon, testjobs, "--heartbeat-interval", "100ms", "--dead-after", "1s")
    seen = wait_until(
        lambda: db.scalar(
            "SELECT progress FROM sv_jobs WHERE id = %s AND state = 'running'", (job_id,)
        ),
        timeout=5,
        message="a progress report written while the job runs",
    )
    assert 0 <= seen["fraction"] < 1 and seen["message"] in ("started", "a quarter", "half way")
    row = wait_state(db, job_id, "succeeded", timeout=5)
    assert row["progress"] == {"fraction": 1.0, "message": "done"}, row["progress"]


def test_per_type_concurrency_limit(db, daemon, testjobs):
    # test.single allows one at a time per daemon; four workers and a fast stream of echo
    # jobs around it must not change that, and the other type still runs alongside.
    singles = [enqueue(db, "test.single", {"ms": 150}) for _ in range(4)]
    echoes = [enqueue(db, "test.echo", {"i": i}) for i in range(20)]
    start(daemon, testjobs, "--max-workers", "4")
    rows = [wait_state(db, job_id, "succeeded", timeout=10) for job_id in singles]
    assert [r["result"] for r in rows] == [{"max_concurrent": 1}] * 4
    assert all(wait_state(db, e, "succeeded", timeout=5) for e in echoes)
    # The echo jobs did not wait for the singles to finish one by one.
    last_echo = max(job(db, e)["finished_at"] for e in echoes)
    assert last_echo < max(r["finished_at"] for r in rows)
