"""Fault-injection tests (issue 4): kill supervisors, restart and cut off PostgreSQL, crash
and hang handlers, start with the database down; then count every job.

Every test ends by counting every job it enqueued: how many ended in which state, how many
times each ran to completion (test.record appends "<job id> <pid> <attempt>" per completed
run), and which errors were recorded. Intervals are shortened so that the whole file runs in
well under a minute or two:

  --heartbeat-interval 100ms  --dead-after 1s  --rescue-interval 200ms  --poll-interval 50ms

Run with -s (or -rP) to see the figures the tests print (the kill -9 test's counts).
"""

import collections
import os
import random
import signal
import time

import psycopg

from svtest import tail, wait_until

FAST = (
    "--heartbeat-interval",
    "100ms",
    "--dead-after",
    "1s",
    "--rescue-interval",
    "200ms",
    "--poll-interval",
    "50ms",
)

# Tests 2 and 3 are about reconnecting, not about leases: a lease long enough that an
# ordinary restart or cut-off never reaches the fence (3/4 of --dead-after without a
# recorded heartbeat). Test 2b covers an outage longer than the lease.
RECONNECT = (
    "--heartbeat-interval",
    "100ms",
    "--dead-after",
    "5s",
    "--rescue-interval",
    "200ms",
    "--poll-interval",
    "50ms",
)

# ---------------------------------------------------------------------------------------
# Helpers.


def enqueue_records(db, n, path, ms_min, ms_max, seed=0):
    """Enqueue n test.record jobs writing to path, each sleeping ms_min..ms_max ms.

    Plain SQL, as an application would enqueue. Returns the ids in order.
    """
    rows = db.query(
        "INSERT INTO sv_jobs (type, payload)"
        " SELECT 'test.record', jsonb_build_object('file', %s::text,"
        "        'ms', %s::int + (hashint4(g + %s) & 2147483647) %% (%s::int - %s::int + 1))"
        "   FROM generate_series(1, %s) AS g"
        " RETURNING id",
        (str(path), ms_min, seed, ms_max, ms_min, n),
    )
    return sorted(r[0] for r in rows)


def enqueue(db, type_, payload="{}", max_attempts=None, timeout_ms=None):
    return db.scalar(
        "SELECT sv_enqueue(%s, %s::jsonb, max_attempts => %s, timeout_ms => %s)",
        (type_, payload, max_attempts, timeout_ms),
    )


def states(conn_or_db, ids=None):
    """{state: count} over all jobs (or the given ids)."""
    sql = "SELECT state, count(*) FROM sv_jobs"
    params = None
    if ids is not None:
        sql += " WHERE id = ANY(%s)"
        params = (list(ids),)
    sql += " GROUP BY state"
    if isinstance(conn_or_db, psycopg.Connection):
        rows = conn_or_db.execute(sql, params).fetchall()
    else:
        rows = conn_or_db.query(sql, params)
    return dict(rows)


def succeeded(conn):
    return conn.execute("SELECT count(*) FROM sv_jobs WHERE state = 'succeeded'").fetchone()[0]


def read_records(path):
    """[(job id, pid, attempt)] in the order the runs completed."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        job_id, pid, attempt = line.split()
        out.append((int(job_id), int(pid), int(attempt)))
    return out


def runs_by_job(records):
    by_job = collections.defaultdict(list)
    for job_id, pid, attempt in records:
        by_job[job_id].append((attempt, pid))
    for runs in by_job.values():
        runs.sort()
    return by_job


def worker_id(db, pid):
    """The sv_workers id of the supervisor process pid (it registers before "ready")."""
    return db.scalar("SELECT id FROM sv_workers WHERE pid = %s ORDER BY id DESC LIMIT 1", (pid,))


def assert_all_succeeded_once(db, ids, records_path):
    """Every job succeeded, each ran to completion exactly once, no error was recorded."""
    counts = states(db)
    assert counts == {"succeeded": len(ids)}, f"job states: {counts}"
    by_job = runs_by_job(read_records(records_path))
    missing = sorted(set(ids) - set(by_job))
    assert not missing, f"{len(missing)} job(s) never recorded a run: {missing[:20]}"
    extra = sorted(set(by_job) - set(ids))
    assert not extra, f"runs recorded for unknown jobs: {extra[:20]}"
    twice = {j: r for j, r in by_job.items() if len(r) > 1}
    assert not twice, (
        f"{len(twice)} job(s) ran more than once although their supervisor never died: "
        f"{dict(list(twice.items())[:10])}"
    )
    bad = db.query(
        "SELECT id, attempts, errors FROM sv_jobs WHERE attempts <> 1 OR errors <> '[]'"
        " ORDER BY id LIMIT 10"
    )
    assert not bad, f"jobs with more than one attempt or with errors: {bad}"


def assert_log_clean(d):
    text = d.log()
    for marker in ("Assertion", "assertion failed", "runtime error:", "AddressSanitizer"):
        assert marker not in text, f"{marker!r} in the log of {d}:\n{tail(text)}"


def daemon_backends(conn, dbname):
    """The pids of the server backends of the daemon(s) connected to dbname."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        (dbname,),
    ).fetchall()
    return [r[0] for r in rows]


# ---------------------------------------------------------------------------------------
# 1. kill -9 of a supervisor during a run, repeatedly, with a second one running throughout.


def test_kill9_during_run_loses_nothing_and_never_runs_a_job_twice_at_once(
    db, daemon, make_plugins_dir, tmp_path
):
    seed = int(os.environ.get("SV_FAULT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    plugins = make_plugins_dir("testjobs")
    records = tmp_path / "records.txt"
    n_jobs = 3000
    n_kills = 4
    workers = 4
    # A 3 s lease: the restarted victim rescues its predecessor's jobs at once anyway, and a
    # loaded CI machine cannot make the live survivor look dead.
    args = ("--heartbeat-interval", "100ms", "--dead-after", "3s", "--rescue-interval",
            "200ms", "--poll-interval", "50ms", "--max-workers", workers)
    ids = enqueue_records(db, n_jobs, records, 2, 12, seed=seed % 1000)
    assert len(ids) == n_jobs

    started = time.monotonic()
    survivor = daemon(*args, plugins_dir=plugins)
    victim = daemon(*args, plugins_dir=plugins)
    # Kill at random moments between 5% and 80% of the run (counted in finished jobs).
    moments = sorted(rng.uniform(0.05, 0.8) for _ in range(n_kills))
    killed = {}  # pid -> (worker id, ids of the jobs it held in the table at its death)
    rescues_seen_at_kill = []

    with db.connect() as conn:
        for moment in moments:
            wait_until(
                lambda: succeeded(conn) >= moment * n_jobs,
                timeout=60,
                message=f"{moment:.0%} of the jobs to finish",
            )
            time.sleep(rng.uniform(0, 0.03))
            assert victim.running(), f"victim exited on its own:\n{tail(victim.log())}"
            wid = worker_id(db, victim.pid)
            pid = victim.pid
            victim.kill()  # SIGKILL, reaped
            # What it held when it died: claimed and not recorded (running or outcome
            # unwritten). Its lease runs for almost 3 s more, so nobody has rescued any of
            # them yet. A claim of its still in the server may commit after this;
            # such jobs never ran in it, so they cannot be re-runs.
            held = {
                r[0]
                for r in conn.execute(
                    "SELECT id FROM sv_jobs WHERE owner = %s AND state = 'running'", (wid,)
                ).fetchall()
            }
            killed[pid] = (wid, held)
            rescues_seen_at_kill.append(
                conn.execute(
                    "SELECT count(*) FROM sv_jobs WHERE errors::text LIKE '%%rescued%%'"
                ).fetchone()[0]
            )
            assert survivor.running(), f"survivor died:\n{tail(survivor.log())}"
            # Restart it, as systemd would: same host, so it rescues its predecessor at once.
            victim = daemon(*args, plugins_dir=plugins)
            victim.wait_for_log(r"found 1 dead supervisor\(s\) on this host", timeout=5)

        wait_until(
            lambda: succeeded(conn) == n_jobs,
            timeout=90,
            interval=0.1,
            message="every job to succeed",
        )
    elapsed = time.monotonic() - started
    assert survivor.running() and victim.running()
    assert survivor.stop() == 0
    assert victim.stop() == 0
    assert_log_clean(survivor)
    # A live supervisor never lost a job it held: none of its outcomes was refused.
    for d in (survivor, victim):
        assert "were not recorded" not in d.log(), tail(d.log())

    # ---- Count every job.
    counts = states(db)
    assert counts == {"succeeded": n_jobs}, f"job states: {counts}"
    recs = read_records(records)
    by_job = runs_by_job(recs)
    lost = sorted(set(ids) - set(by_job))
    assert set(by_job) <= set(ids)
    rows = {
        r[0]: (r[1], r[2])
        for r in db.query("SELECT id, attempts, errors FROM sv_jobs ORDER BY id")
    }
    killed_pids = set(killed)
    killed_wids = {wid for wid, _ in killed.values()}
    reruns = {j: runs for j, runs in by_job.items() if len(runs) > 1}
    problems = []
    for j, runs in by_job.items():
        attempts, errors = rows[j]
        run_attempts = [a for a, _ in runs]
        if len(set(run_attempts)) != len(run_attempts):
            problems.append(f"job {j}: two completed runs of the same attempt: {runs}")
        if max(run_attempts) != attempts:
            problems.append(f"job {j}: last recorded run is attempt {max(run_attempts)}, "
                            f"the table says {attempts} attempts")
        # Every run but the last must have been in a supervisor that was then killed, and
        # the job must have been held by it at its death: re-runs only of jobs in flight.
        for a, pid in runs[:-1]:
            if pid not in killed_pids:
                problems.append(f"job {j}: attempt {a} ran in live pid {pid}, then ran "
                                f"again: {runs}")
            elif j not in killed[pid][1]:
                problems.append(f"job {j}: attempt {a} ran in pid {pid}, killed, but the "
                                f"job was not held by it at the kill: {runs}")
        # Every failed attempt is a rescue from a killed supervisor.
        if len(errors) != attempts - 1:
            problems.append(f"job {j}: {attempts} attempts but {len(errors)} errors: {errors}")
        for e in errors:
            msg = e.get("error", "")
            if "rescued" not in msg:
                problems.append(f"job {j}: an error that is not a rescue: {e}")
            elif not any(f"worker {w} " in msg for w in killed_wids):
                problems.append(f"job {j}: rescued from a supervisor that was not killed: {e}")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:30])
    for j in reruns:
        assert any("rescued" in e["error"] for e in rows[j][1]), j

    held_total = sum(len(h) for _, h in killed.values())
    summary = (
        f"kill -9 test (seed {seed}): {n_jobs} jobs, {len(recs)} runs to completion, "
        f"{len(killed)} kills (at {', '.join(f'{m:.0%}' for m in moments)} of the run), "
        f"{held_total} jobs held by the killed supervisors, "
        f"{len(reruns)} jobs ran more than once, "
        f"{sum(1 for r in rows.values() if r[0] > 1)} jobs took more than one attempt, "
        f"{len(lost)} lost; {elapsed:.1f}s"
    )
    print("\n" + summary)
    assert not lost, f"{summary}\nlost jobs: {lost[:20]}"
    assert len(killed) == n_kills, summary
    # Rescues happen after each kill, not before the first.
    assert rescues_seen_at_kill[0] == 0, summary


# ---------------------------------------------------------------------------------------
# 2. PostgreSQL restarted (fast shutdown) during a run.


def test_postgres_restart_during_run(pg, db, daemon, make_plugins_dir, tmp_path):
    plugins = make_plugins_dir("testjobs")
    records = tmp_path / "records.txt"
    n_jobs = 1500
    ids = enqueue_records(db, n_jobs, records, 2, 8)
    d = daemon(*RECONNECT, "--max-workers", 4, plugins_dir=plugins)
    pid = d.pid
    with db.connect() as conn:
        wait_until(lambda: succeeded(conn) >= n_jobs // 4, timeout=60)
    mark = d.mark()
    pg.restart()  # fast shutdown: every connection is cut
    done_at_restart = db.scalar("SELECT count(*) FROM sv_jobs WHERE state = 'succeeded'")
    assert done_at_restart < n_jobs, "the run ended before the restart; make it longer"
    d.wait_for_log(r"database connection \(queue\) lost", since=mark, timeout=10)
    d.wait_for_log(r"database connection \(queue\) re-established", since=mark, timeout=15)
    with db.connect() as conn:
        wait_until(lambda: succeeded(conn) == n_jobs, timeout=60, interval=0.1)
    assert d.running() and d.pid == pid, f"the daemon exited:\n{tail(d.log())}"
    assert d.stop() == 0
    assert_log_clean(d)
    print(f"\npostgres restart: {n_jobs} jobs, restart after {done_at_restart} had finished")
    assert_all_succeeded_once(db, ids, records)


# ---------------------------------------------------------------------------------------
# 2b. The database away for longer than --dead-after while jobs run.


def test_outage_longer_than_dead_after_runs_no_job_twice(pg, db, daemon, make_plugins_dir,
                                                         tmp_path):
    """The database is away longer than --dead-after while the only supervisor runs jobs.

    Some jobs finish during the outage (their outcomes wait in memory), some run through it.
    Those running through it are fenced: when no heartbeat was recorded for 3/4 of
    --dead-after, the supervisor cancels them (test.record is cooperative: a cancelled run
    records nothing) and the reconnect or a rescue puts them back. Those that finished must
    keep their result: the supervisor is alive, so nothing may rescue them from under their
    pending outcome (issue 4: "outcomes not yet written are kept in memory and written after
    reconnect; jobs are not run twice because of it while the supervisor lives").

    The race this guards against: after the reconnect the queue connection reconciles and
    runs the rescue pass, while the pending outcomes go over the outcomes connection, which
    reconnects on its own backoff, before or after. When it comes back second, a rescue
    pass sent before the first heartbeat takes the jobs whose outcomes are still in memory.
    The order is left to chance, so the outage is repeated three times.
    """
    plugins = make_plugins_dir("testjobs")
    records = tmp_path / "records.txt"
    d = daemon("--heartbeat-interval", "300ms", "--dead-after", "1s", "--rescue-interval",
               "20ms", "--poll-interval", "50ms", "--max-workers", 8, plugins_dir=plugins)
    all_ids, short_ids = [], []
    for rnd in range(3):
        short = enqueue_records(db, 4, records, 250, 250)
        long_ = enqueue_records(db, 2, records, 2000, 2000)
        ids = short + long_
        all_ids += ids
        short_ids += short
        with db.connect() as conn:
            wait_until(lambda: states(conn, ids).get("running") == len(ids), timeout=10)
        mark = d.mark()
        pg.stop()
        try:
            time.sleep(1.5)  # longer than --dead-after
        finally:
            pg.start()
        d.wait_for_log(r"database connection \(queue\) re-established", since=mark,
                       timeout=15)
        with db.connect() as conn:
            wait_until(lambda: states(conn, ids) == {"succeeded": len(ids)}, timeout=20,
                       interval=0.05)
        assert d.running(), f"the daemon exited:\n{tail(d.log())}"
        assert "gave up 2 job(s)" in d.log()[mark:], tail(d.log())  # the long ones: fenced
        by_job = runs_by_job(read_records(records))
        rows = db.query("SELECT id, state, attempts, errors FROM sv_jobs WHERE id = ANY(%s)"
                        " ORDER BY id", (ids,))
        twice = {j: r for j, r in by_job.items() if len(r) > 1}
        assert not twice, (
            f"round {rnd + 1}: jobs ran to completion twice in one live supervisor: {twice}\n"
            f"jobs: {rows}\n--- log:\n{tail(d.log()[mark:], 40)}"
        )
        # The short ones finished before the fence: their first outcome is recorded.
        bad = [r for r in rows if r[0] in short and (r[2] != 1 or r[3] != [])]
        assert not bad, f"round {rnd + 1}: {bad}\n--- log:\n{tail(d.log()[mark:], 40)}"
    assert d.stop() == 0
    assert_log_clean(d)
    assert states(db) == {"succeeded": len(all_ids)}
    assert set(runs_by_job(read_records(records))) == set(all_ids)


# ---------------------------------------------------------------------------------------
# 3. pg_terminate_backend on the daemon's connections, repeatedly.


def test_terminated_backends_during_run(db, daemon, make_plugins_dir, tmp_path):
    plugins = make_plugins_dir("testjobs")
    records = tmp_path / "records.txt"
    n_jobs = 1500
    n_cuts = 5
    ids = enqueue_records(db, n_jobs, records, 2, 8)
    d = daemon(*RECONNECT, "--max-workers", 4, plugins_dir=plugins)
    terminated = []
    with db.connect() as conn:
        for k in range(n_cuts):
            wait_until(lambda: succeeded(conn) >= (k + 1) * n_jobs // (n_cuts + 3), timeout=60)
            # The previous cut must have healed, so that this one hits a live connection.
            wait_until(lambda: daemon_backends(conn, db.name), timeout=10)
            mark = d.mark()
            pids = daemon_backends(conn, db.name)
            for bp in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (bp,))
            terminated.append((pids, succeeded(conn)))
            d.wait_for_log(r"database connection \(queue\) lost", since=mark, timeout=10)
            d.wait_for_log(r"database connection \(queue\) re-established", since=mark,
                           timeout=10)
        assert succeeded(conn) < n_jobs, "the run ended before the last cut; make it longer"
        wait_until(lambda: succeeded(conn) == n_jobs, timeout=60, interval=0.1)
    assert d.running(), f"the daemon exited:\n{tail(d.log())}"
    assert d.stop() == 0
    assert_log_clean(d)
    print(f"\nterminated backends: {terminated}")
    assert len(terminated) == n_cuts
    assert_all_succeeded_once(db, ids, records)


# ---------------------------------------------------------------------------------------
# 4. A handler that crashes the process: restarted like systemd would, until the job is dead.


def test_crashing_handler_ends_dead_and_others_succeed(db, daemon, make_plugins_dir):
    plugins = make_plugins_dir("testjobs", "crash")
    # A long --dead-after: only the same-host predecessor check can rescue quickly.
    args = (
        "--heartbeat-interval", "100ms", "--dead-after", "60s",
        "--rescue-interval", "200ms", "--poll-interval", "50ms", "--max-workers", 4,
    )
    echo_ids = [enqueue(db, "test.echo", f'{{"i": {i}}}') for i in range(50)]
    crash_id = enqueue(db, "test.crash", max_attempts=3)

    def crash_job():
        return db.query("SELECT state, attempts, errors FROM sv_jobs WHERE id = %s",
                        (crash_id,))[0]

    crashed_pids = []
    rescue_delays = []
    # Under ASan or TSan, let the SIGSEGV kill the process as it would in production rather than
    # have ASan report it (the harness fails a test on any sanitizer report).
    crash_env = {
        name: os.environ.get(name, "") + ":handle_segv=0"
        for name in ("ASAN_OPTIONS", "TSAN_OPTIONS")
    }
    d = daemon(*args, plugins_dir=plugins, env=crash_env)
    for _ in range(5):
        rc = d.wait(timeout=20)
        assert rc == -signal.SIGSEGV, f"expected a SIGSEGV, got {rc}:\n{tail(d.log())}"
        crashed_pids.append(d.pid)
        state, attempts, errors = crash_job()
        assert state == "running" and attempts == len(crashed_pids), (state, attempts, errors)
        # Restart, as systemd would. The new process sees its predecessor's pid is gone
        # and rescues the job at once, long before --dead-after.
        d = daemon(*args, plugins_dir=plugins, env=crash_env)
        t0 = time.monotonic()
        wait_until(lambda: crash_job()[0] != "running", timeout=3,
                   message="the crashed supervisor's job to be rescued")
        rescue_delays.append(time.monotonic() - t0)
        d.wait_for_log(r"found 1 dead supervisor\(s\) on this host", timeout=2)
        if crash_job()[0] == "dead":
            break
    state, attempts, errors = crash_job()
    assert state == "dead", (state, attempts, errors)
    assert len(crashed_pids) == 3 and attempts == 3
    assert [e["attempt"] for e in errors] == [1, 2, 3], errors
    for e, pid in zip(errors, crashed_pids):
        assert "rescued" in e["error"] and f"pid {pid})" in e["error"], (e, pid)

    # Everything else succeeds.
    wait_until(lambda: states(db, echo_ids) == {"succeeded": 50}, timeout=15,
               message="the echo jobs to succeed")
    assert d.running()
    assert d.stop() == 0
    assert_log_clean(d)
    assert states(db) == {"succeeded": 50, "dead": 1}
    results = db.query("SELECT payload = result FROM sv_jobs WHERE id = ANY(%s)", (echo_ids,))
    assert all(r[0] for r in results)
    print(f"\ncrash: {len(crashed_pids)} crashes, rescue after restart took "
          f"{', '.join(f'{t:.2f}s' for t in rescue_delays)}")


# ---------------------------------------------------------------------------------------
# 5. A handler that hangs and ignores cancellation.


def test_hanging_handler_is_reported_stuck_and_shutdown_still_exits(db, daemon,
                                                                   make_plugins_dir):
    plugins = make_plugins_dir("testjobs")
    d = daemon(*FAST, "--max-workers", 4, "--stuck-after", "500ms",
               "--shutdown-timeout", "500ms", plugins_dir=plugins)
    # One that times out (300 ms) on both its attempts, ignoring the cancellation each time.
    timed_out = enqueue(db, "test.hang", '{"ms": 60000}', max_attempts=2, timeout_ms=300)
    d.wait_for_log(rf"job {timed_out}\b.*stuck: the handler has ignored cancellation",
                   timeout=5)
    wait_until(lambda: db.scalar("SELECT state FROM sv_jobs WHERE id = %s", (timed_out,))
               == "dead", timeout=5)
    wait_until(lambda: d.log().count("stuck: the handler has ignored cancellation") >= 2,
               timeout=5)
    # Two slots are stuck; the other two keep working.
    echo_ids = [enqueue(db, "test.echo", f'{{"i": {i}}}') for i in range(30)]
    wait_until(lambda: states(db, echo_ids) == {"succeeded": 30}, timeout=10)
    # One that is still running (well within its timeout) when SIGTERM comes.
    running = enqueue(db, "test.hang", '{"ms": 60000}', timeout_ms=60000)
    wait_until(lambda: db.scalar("SELECT state FROM sv_jobs WHERE id = %s", (running,))
               == "running", timeout=5)
    more_echo = [enqueue(db, "test.echo", f'{{"j": {i}}}') for i in range(10)]
    wait_until(lambda: states(db, more_echo) == {"succeeded": 10}, timeout=10)

    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait(timeout=10)
    took = time.monotonic() - t0
    assert rc == 0, tail(d.log())
    # The grace period (500 ms) plus the time allowed to write the hand-backs (1 s).
    assert took < 4, f"took {took:.1f}s to exit"
    log = d.log()
    assert "still running at the end of the grace period" in log
    assert "handler(s) still running that ignored cancellation" in log
    assert_log_clean(d)

    # The timed-out job: each attempt recorded as failed by its timeout; dead after two.
    state, attempts, errors = db.query(
        "SELECT state, attempts, errors FROM sv_jobs WHERE id = %s", (timed_out,))[0]
    assert (state, attempts) == ("dead", 2), (state, attempts, errors)
    assert [e["error"] for e in errors] == ["timed out after 300 ms"] * 2, errors
    # The job running at SIGTERM: handed back, queued again without spending the attempt.
    state, attempts, errors, owner = db.query(
        "SELECT state, attempts, errors, owner FROM sv_jobs WHERE id = %s", (running,))[0]
    assert (state, attempts, errors, owner) == ("queued", 0, [], None)
    assert states(db, echo_ids + more_echo) == {"succeeded": 40}
    assert states(db) == {"succeeded": 40, "dead": 1, "queued": 1}
    print(f"\nhang: SIGTERM to exit took {took:.2f}s")


# ---------------------------------------------------------------------------------------
# 6. The database is down when the daemon starts.


def test_database_down_at_start(pg, db, daemon, make_plugins_dir, tmp_path):
    plugins = make_plugins_dir("testjobs")
    records = tmp_path / "records.txt"
    n_jobs = 300
    ids = enqueue_records(db, n_jobs, records, 1, 3)
    pg.stop()
    try:
        d = daemon(*FAST, "--max-workers", 4, plugins_dir=plugins, wait_ready=False)
        d.wait_for_log(r"cannot connect to the database", timeout=10)
        time.sleep(2.5)  # several retries
        assert d.running(), f"the daemon gave up:\n{tail(d.log())}"
        assert "ready" not in d.log()
    finally:
        pg.start()
    d.wait_for_log(r"\bready\b", timeout=20)
    with db.connect() as conn:
        wait_until(lambda: succeeded(conn) == n_jobs, timeout=30, interval=0.1)
    assert d.stop() == 0
    assert_log_clean(d)
    assert_all_succeeded_once(db, ids, records)

