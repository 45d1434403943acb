#!/usr/bin/python3
"""The supervisor-worker benchmark (issue 5; docs/performance.md explains every figure).

    /usr/bin/python3 test/bench/bench.py --build build [--jobs 100000] [--repeat 3] [--quick]

Starts its own throwaway PostgreSQL with stock settings (initdb's defaults; only the port,
the socket directory and the listen address are set; run as the `postgres` user when this
runs as root), or uses the server the libpq environment names when PGHOST is set. Creates
a database, runs `supervisor-worker migrate` and measures, for the built daemon with the
noop plugin:

  drain      N jobs bulk-enqueued, `run --one-shot` timed from spawn to exit; at default
             settings, --max-workers 1, --max-workers 16 (and --prefetch 0, for what the
             local queue buys); median of --repeat runs; every job must have succeeded
  ceiling    the same N jobs claimed 500 at a time and completed with one UPDATE, from two
             connections, in raw SQL: the database's own limit; drain as a ratio of it
  sql        per-job cost of the raw statements and of the daemon's own (core/queries.h)
  latency    an idle daemon; a producer enqueues jobs one transaction at a time at 100/s;
             enqueue commit (client clock) to handler start (the bench.clock handler's
             clock): p50/p95/p99/max
  enqueue    sv_enqueue() one transaction per job, and in bulk (one statement)
  deep       the daemon's own claim statement (from core/queries.h), 100 jobs, rolled back:
             10,000 queued vs 1,000,000 queued + 1,000,000 succeeded rows; ratio
  resources  the daemon's peak RSS (VmHWM) and CPU seconds (wait4) per 100,000 jobs, its
             idle RSS (VmRSS after 2 s idle); `rss`: one 1,000,000-job drain for the peak

Output: a table on stdout, then one JSON line per figure (also to --json-out FILE).
Progress goes to stderr. Exits non-zero when the daemon fails or a job is lost, so that CI
can run `--quick` to keep the tool from rotting. Timings are not pass/fail.

Another store (the planned embedded SQLite store) plugs in as a Store subclass: see Store.
Only the standard library, Debian's python3-psycopg (psycopg 3) and the PostgreSQL server
binaries are needed.
"""

import argparse
import datetime
import json
import math
import os
import platform
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The PostgreSQL helpers the integration suite uses (finding the server binaries, a free
# port, quoting a connection string).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from svtest import find_pg_bindir, free_port, make_dsn  # noqa: E402

try:
    import psycopg
except ImportError:  # pragma: no cover
    sys.exit("bench.py needs psycopg 3 for this interpreter: apt-get install python3-psycopg, "
             "and run it with /usr/bin/python3")

SOURCE_ROOT = Path(__file__).resolve().parents[2]


class BenchError(Exception):
    """A failure that makes the run's figures meaningless: exit non-zero."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


# --------------------------------------------------------------------------------------
# The daemon.


class Daemon:
    """One `supervisor-worker run` process; output in a log file; reaped with wait4."""

    live = set()  # killed on the way out if something fails

    def __init__(self, binary, args, log_path, env=None):
        self.log_path = Path(log_path)
        self.argv = [str(binary), "run", *map(str, args)]
        self.status = None
        self.rusage = None
        self.hwm_kb = None
        self.started = time.perf_counter()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
            )
        Daemon.live.add(self)
        # The peak RSS comes from VmHWM, sampled until the exit: wait4's ru_maxrss would
        # also count this Python process, whose memory the child shared until it exec'd
        # (the kernel records the old mm's high-water mark at exec).
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample_hwm, daemon=True)
        self._sampler.start()

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self):
        return self.status is None and self.proc.poll() is None

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            if re.search(r"\bready:", self.log()):
                return
            if self.proc.poll() is not None:
                raise BenchError(f"the daemon exited ({self.proc.returncode}) before it was "
                                 f"ready:\n{tail(self.log())}")
            if time.monotonic() > deadline:
                raise BenchError(f"the daemon was not ready within {timeout:g}s:\n"
                                 f"{tail(self.log())}")
            time.sleep(0.01)

    def _sample_hwm(self):
        while not self._stop_sampling.is_set():
            v = self.proc_status("VmHWM")
            if v is None and self.hwm_kb is not None:
                return  # exited: a zombie has no VmHWM line
            if v is not None:
                self.hwm_kb = v
            self._stop_sampling.wait(0.01)

    def proc_status(self, field):
        """A field of /proc/PID/status in kB (VmRSS, VmHWM), or None."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def wait(self, timeout):
        """Blocks in wait4 until the daemon exits (SIGKILL after timeout); returns seconds
        since spawn. Sets .status (exit code, negative for a signal) and .rusage."""
        timer = threading.Timer(timeout, self._kill_late)
        timer.start()
        try:
            _, status, rusage = os.wait4(self.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - self.started
        self._stop_sampling.set()
        self._sampler.join()
        self.status = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.status  # we reaped it, not Popen
        self.rusage = rusage
        Daemon.live.discard(self)
        if getattr(self, "_killed_late", False):
            raise BenchError(f"the daemon did not finish within {timeout:g}s; killed it:\n"
                             f"{tail(self.log())}")
        return elapsed

    def _kill_late(self):
        self._killed_late = True
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self, timeout=60.0):
        """SIGTERM, then wait; returns the exit status."""
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.wait(timeout)
        return self.status

    def kill(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.wait(10)
            except (BenchError, ChildProcessError):
                pass

    def peak_rss_kb(self):
        """VmHWM as last seen before the exit, in kB."""
        return self.hwm_kb

    def cpu_s(self):
        return self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else None


# --------------------------------------------------------------------------------------
# Stores. A store knows how to give the daemon a fresh, migrated job table, fill it, look
# at it, and measure its own ceiling without the daemon. The benchmark logic above it
# (drain, latency, resources) is the same for every store.


class Store:
    """What the benchmark needs from a job store. Implement every method for a new store
    (an embedded SQLite store would open the database file directly for the raw figures and
    hand the daemon its path in daemon_args)."""

    name = "abstract"

    def setup(self, binary):
        """Start or reach the store, create an empty database and run `migrate` on it."""
        raise NotImplementedError

    def teardown(self):
        raise NotImplementedError

    def describe(self):
        """{'store': ..., 'version': ..., ...}: what the figures were measured on."""
        raise NotImplementedError

    def daemon_args(self):
        """The flags that point `supervisor-worker run` at this store."""
        raise NotImplementedError

    def reset(self):
        """Remove every job."""
        raise NotImplementedError

    def settle(self):
        """Bring the store to a steady state before a timed phase (statistics, checkpoint)."""
        raise NotImplementedError

    def enqueue_bulk(self, n, job_type="noop"):
        """Enqueue n jobs through the store's enqueue function in one statement; seconds."""
        raise NotImplementedError

    def fill(self, queued, finished, job_type="noop"):
        """Insert rows directly (not through the enqueue function): `finished` succeeded
        rows, then `queued` ready ones."""
        raise NotImplementedError

    def producer(self):
        """A connection for enqueueing one job per transaction: an object with
        .enqueue(job_type) -> (id, commit_time_us), where commit_time_us is CLOCK_REALTIME
        in microseconds read as soon as the commit returned, and .close()."""
        raise NotImplementedError

    def counts(self):
        """{state: number of jobs}."""
        raise NotImplementedError

    def results(self, job_type):
        """{id: result (decoded JSON)} of the succeeded jobs of job_type."""
        raise NotImplementedError

    def db_window_s(self):
        """Seconds from the first claim to the last finish recorded in the table."""
        raise NotImplementedError

    def rate_profile(self, parts):
        """Jobs/s in each of `parts` equal slices of the jobs, in the order they finished
        (the first slice counted from the first claim). Optional."""
        raise NotImplementedError

    def raw_ceiling(self, conns, batch, timeout):
        """Claim `batch` ready jobs and complete them, in a loop on `conns` connections,
        until none is left, with the simplest SQL the store allows; seconds."""
        raise NotImplementedError

    def claim_cost(self, batch, claims, warmup):
        """Mean milliseconds of the daemon's own claim statement for `batch` jobs, over
        `claims` claims, each undone afterwards; and a one-line plan summary."""
        raise NotImplementedError

    def statement_costs(self, n, batch):
        """Microseconds per job of the raw ceiling's claim and completion and of the
        daemon's own claim and outcome statements, each over n jobs in batches, from one
        connection: {name: us per job}. Optional (NotImplementedError skips the figure)."""
        raise NotImplementedError

    def claim_index_variants(self):
        """Names of alternative claim indexes claim_cost can be measured with, for what the
        store's own indexes buy (may be empty)."""
        return []

    def use_claim_index_variant(self, name):
        """A context manager: the store's claim index replaced by variant `name`."""
        raise NotImplementedError


class ThrowawayPostgres:
    """A cluster in a temporary directory with stock settings. Only listen_addresses, port
    and unix_socket_directories are set (in an included file). Runs as `postgres` when we
    are root. Same approach as test/integration/conftest.py, minus its durability shortcuts:
    fsync, synchronous_commit and full_page_writes stay at their defaults (on)."""

    user = "postgres"

    def __init__(self, parent):
        try:
            self.bindir = find_pg_bindir()
        except RuntimeError as e:
            raise BenchError(str(e)) from None
        self.as_postgres = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise BenchError("running as root needs a `postgres` user to run the server")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
        if owner:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            if subprocess.run(self.as_postgres + ["test", "-w", str(self.dir)]).returncode:
                raise BenchError(f"user postgres cannot write {self.dir}; set TMPDIR to a "
                                 "directory it can reach, such as /tmp")
        self.datadir = self.dir / "data"
        self.socket_dir = self.dir / "socket"
        self.logfile = self.dir / "postgres.log"
        self.ctl_out = self.dir / "pg_ctl.out"
        self.port = None
        self.started = False

    def _run(self, *cmd, timeout=300):
        # Not through a pipe: the postmaster would inherit it and a read would never end.
        with open(self.ctl_out, "ab") as out:
            return subprocess.run(
                self.as_postgres + [os.path.join(self.bindir, cmd[0]), *cmd[1:]],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.dir, timeout=timeout,
            ).returncode

    def diagnostics(self):
        parts = []
        for f in (self.ctl_out, self.logfile):
            if f.exists():
                parts.append(f"--- {f}:\n{tail(f.read_text(errors='replace'))}")
        return "\n".join(parts)

    def _write_settings(self):
        (self.datadir / "sv_bench.conf").write_text(
            f"listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
        )

    def start(self):
        self.socket_dir.mkdir()
        if self.as_postgres:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        rc = self._run("initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust",
                       "--no-locale", "--encoding=UTF8", "--no-sync")
        if rc != 0:
            raise BenchError(f"initdb failed ({rc}):\n{self.diagnostics()}")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\ninclude = 'sv_bench.conf'\n")
        for _ in range(3):
            self.port = free_port()
            self._write_settings()
            size = self.logfile.stat().st_size if self.logfile.exists() else 0
            rc = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir),
                           "-l", str(self.logfile))
            if rc == 0:
                self.started = True
                return
            new = self.logfile.read_bytes()[size:].decode(errors="replace")
            if "could not bind" not in new and "already in use" not in new:
                break
        raise BenchError(f"PostgreSQL did not start ({rc}):\n{self.diagnostics()}")

    def destroy(self, keep=False):
        try:
            if self.started:
                self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D",
                          str(self.datadir))
        finally:
            if not keep:
                shutil.rmtree(self.dir, ignore_errors=True)


def _sql_from_header(path, name):
    """The SQL text of `#define name` in core/queries.h (its string literals, joined)."""
    text = Path(path).read_text()
    m = re.search(r"^#define\s+" + re.escape(name) + r"\b(.*?)(?<!\\)\n", text, re.S | re.M)
    if not m:
        return None
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    sql = "".join(parts).replace('\\"', '"').replace("\\\\", "\\")
    return sql or None


class PostgresStore(Store):
    name = "postgresql"

    # The raw ceiling: the daemon's claim in its simplest form (no type list, no cutoff, no
    # per-type defaults), and a completion that sets what the daemon's would.
    CEILING_CLAIM = (
        "WITH picked AS ("
        "  SELECT id FROM sv_jobs"
        "   WHERE state = 'queued' AND run_at <= now()"
        "   ORDER BY priority, run_at, id"
        "   LIMIT %(limit)s"
        "   FOR UPDATE SKIP LOCKED)"
        " UPDATE sv_jobs j"
        "    SET state = 'running', attempts = j.attempts + 1, owner = %(owner)s,"
        "        started_at = now(), lease_expires_at = now() + interval '30 seconds'"
        "   FROM picked WHERE j.id = picked.id"
        " RETURNING j.id"
    )
    CEILING_COMPLETE = (
        "UPDATE sv_jobs SET state = 'succeeded', finished_at = now(), owner = NULL,"
        "       lease_expires_at = NULL"
        " WHERE id = ANY(%(ids)s) AND state = 'running'"
    )

    def __init__(self, workdir, use_tcp=False, keep=False):
        self.workdir = workdir
        self.use_tcp = use_tcp
        self.keep = keep
        self.server = None
        self.external = bool(os.environ.get("PGHOST"))
        self.dbname = f"sv_bench_{os.getpid()}"
        self.conn = None
        self.can_checkpoint = True
        self.claim_sql = _sql_from_header(SOURCE_ROOT / "core" / "queries.h", "SV__SQL_CLAIM")
        if self.claim_sql is None or "$6" not in self.claim_sql:
            raise BenchError("cannot read the daemon's claim statement (SV__SQL_CLAIM) from "
                             "core/queries.h; update _sql_from_header or claim_cost")

    # -- connections

    def _params(self, dbname):
        if self.external:
            return {"dbname": dbname}  # the rest from PGHOST, PGPORT, PGUSER, ...
        host = "127.0.0.1" if self.use_tcp else str(self.server.socket_dir)
        return {"host": host, "port": self.server.port, "user": self.server.user,
                "dbname": dbname}

    def dsn(self, dbname=None):
        return make_dsn(**self._params(dbname or self.dbname))

    def connect(self, dbname=None, autocommit=True, **kw):
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kw)

    # -- life cycle

    def setup(self, binary):
        if self.external:
            log(f"using the PostgreSQL server of the environment (PGHOST={os.environ['PGHOST']})")
        else:
            self.server = ThrowawayPostgres(self.workdir)
            log(f"starting a throwaway PostgreSQL (stock settings) in {self.server.dir}")
            self.server.start()
        with self.connect("postgres") as c:
            c.execute(f'DROP DATABASE IF EXISTS "{self.dbname}"')
            c.execute(f'CREATE DATABASE "{self.dbname}"')
        proc = subprocess.run([str(binary), "migrate", "--dsn", self.dsn()],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise BenchError(f"`supervisor-worker migrate` failed ({proc.returncode}):\n"
                             f"{proc.stderr}{proc.stdout}")
        self.conn = self.connect()

    def teardown(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        try:
            if self.server is None or self.server.started:
                with self.connect("postgres") as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except psycopg.Error as e:
            log(f"could not drop database {self.dbname}: {e}")
        finally:
            if self.server is not None:
                self.server.destroy(keep=self.keep)

    def describe(self):
        row = self.conn.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'),"
            " current_setting('fsync'), current_setting('synchronous_commit'),"
            " current_setting('max_wal_size')").fetchone()
        return {
            "store": self.name,
            "version": row[0],
            "server": "external (PGHOST)" if self.external else "throwaway, stock settings",
            "connection": "tcp" if (self.use_tcp or self.external) else "unix socket",
            "shared_buffers": row[1], "fsync": row[2], "synchronous_commit": row[3],
            "max_wal_size": row[4],
        }

    def daemon_args(self):
        return ["--dsn", self.dsn()]

    # -- filling and looking

    def reset(self):
        self.conn.execute("TRUNCATE sv_jobs")

    def settle(self):
        self.conn.execute("VACUUM ANALYZE sv_jobs")
        if self.can_checkpoint:
            try:
                self.conn.execute("CHECKPOINT")
            except psycopg.Error as e:
                self.can_checkpoint = False
                log(f"no CHECKPOINT before timed phases ({e.sqlstate}: not a superuser?)")

    def enqueue_bulk(self, n, job_type="noop"):
        t0 = time.perf_counter()
        got = self.conn.execute(
            "SELECT count(sv_enqueue(%s)) FROM generate_series(1, %s)", (job_type, n)
        ).fetchone()[0]
        elapsed = time.perf_counter() - t0
        if got != n:
            raise BenchError(f"bulk enqueue returned {got} ids for {n} jobs")
        return elapsed

    def fill(self, queued, finished, job_type="noop"):
        if finished:
            self.conn.execute(
                "INSERT INTO sv_jobs (type, state, attempts, max_attempts, result, run_at,"
                "                     created_at, started_at, finished_at)"
                " SELECT %s, 'succeeded', 1, 25, '{}', now(), now(), now(), now()"
                "   FROM generate_series(1, %s)", (job_type, finished))
        if queued:
            self.conn.execute(
                "INSERT INTO sv_jobs (type) SELECT %s FROM generate_series(1, %s)",
                (job_type, queued))

    class _Producer:
        def __init__(self, conn):
            self.conn = conn

        def enqueue(self, job_type):
            job_id = self.conn.execute("SELECT sv_enqueue(%s)", (job_type,),
                                       prepare=True).fetchone()[0]
            return job_id, time.time_ns() // 1000  # autocommit: the commit has returned

        def close(self):
            self.conn.close()

    def producer(self):
        return self._Producer(self.connect())

    def counts(self):
        return dict(self.conn.execute(
            "SELECT state, count(*) FROM sv_jobs GROUP BY state").fetchall())

    def results(self, job_type):
        return dict(self.conn.execute(
            "SELECT id, result FROM sv_jobs WHERE type = %s AND state = 'succeeded'",
            (job_type,)).fetchall())

    def db_window_s(self):
        v = self.conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM sv_jobs"
        ).fetchone()[0]
        return float(v) if v is not None else None

    def rate_profile(self, parts):
        fractions = [i / parts for i in range(1, parts + 1)]
        start, marks, n = self.conn.execute(
            "SELECT min(started_at),"
            "       percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY finished_at),"
            "       count(*)"
            "  FROM sv_jobs", (fractions,)).fetchone()
        times = [start, *marks]
        return [n / parts / max(1e-6, (b - a).total_seconds())
                for a, b in zip(times, times[1:])]

    # -- raw figures

    def raw_ceiling(self, conns, batch, timeout):
        start = threading.Event()
        errors = []
        done_counts = [0] * conns
        ready = threading.Barrier(conns + 1)

        def worker(i):
            try:
                with self.connect() as c:
                    c.execute("SELECT 1")
                    ready.wait(30)
                    start.wait()
                    deadline = time.monotonic() + timeout
                    while time.monotonic() < deadline:
                        ids = [r[0] for r in c.execute(
                            self.CEILING_CLAIM, {"limit": batch, "owner": -1 - i},
                            prepare=True).fetchall()]
                        if not ids:
                            return
                        c.execute(self.CEILING_COMPLETE, {"ids": ids}, prepare=True)
                        done_counts[i] += len(ids)
                    errors.append(f"connection {i} still claiming after {timeout:g}s")
            except Exception as e:  # noqa: BLE001 - reported by the caller
                errors.append(f"connection {i}: {e!r}")
                try:
                    ready.abort()
                except threading.BrokenBarrierError:
                    pass

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conns)]
        for t in threads:
            t.start()
        try:
            ready.wait(60)
        except threading.BrokenBarrierError:
            pass
        t0 = time.perf_counter()
        start.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise BenchError("raw ceiling: " + "; ".join(errors))
        return elapsed

    def _claim_params(self, batch):
        # owner, types, limit, lease ms, default max attempts, one-shot cutoff (none)
        return [b"-1", b"{noop}", str(batch).encode(), b"30000", b"{25}", None]

    def claim_cost(self, batch, claims, warmup):
        pq = psycopg.pq
        with self.connect() as c:
            pg = c.pgconn
            res = pg.prepare(b"bench_claim", self.claim_sql.encode())
            if res.status != pq.ExecStatus.COMMAND_OK:
                raise BenchError(f"cannot prepare the claim: {res.error_message.decode()}")
            params = self._claim_params(batch)
            times = []
            for i in range(warmup + claims):
                pg.exec_(b"BEGIN")
                t0 = time.perf_counter()
                res = pg.exec_prepared(b"bench_claim", params)
                t1 = time.perf_counter()
                ok = res.status == pq.ExecStatus.TUPLES_OK
                n = res.ntuples if ok else 0
                msg = "" if ok else res.error_message.decode()
                pg.exec_(b"ROLLBACK")
                if not ok:
                    raise BenchError(f"claim failed: {msg}")
                if n != batch:
                    raise BenchError(f"claim returned {n} jobs, expected {batch}")
                if i >= warmup:
                    times.append((t1 - t0) * 1000.0)
            # The plan the prepared statement ran with (generic once the server chose one).
            args = ", ".join("NULL" if v is None else "'" + v.decode() + "'" for v in params)
            res = pg.exec_(f"EXPLAIN EXECUTE bench_claim({args})".encode())
            if res.status != pq.ExecStatus.TUPLES_OK:
                raise BenchError(f"cannot explain the claim: {res.error_message.decode()}")
            plan = [res.get_value(r, 0).decode() for r in range(res.ntuples)]
        # Every scan of the job table: the walk for ready jobs, then how the UPDATE finds
        # the picked rows again (an index scan per row, or a sequential scan of the table).
        scans = [re.sub(r"\s*\(cost=.*", "", line.strip().lstrip("-> ").strip())
                 for line in plan if "Scan" in line and " on sv_jobs" in line]
        scan = "; ".join(scans) or "?"
        return statistics.mean(times), statistics.median(times), scan

    def statement_costs(self, n, batch):
        pq = psycopg.pq
        outcomes_sql = _sql_from_header(SOURCE_ROOT / "core" / "queries.h", "SV__SQL_OUTCOMES")
        if outcomes_sql is None:
            raise BenchError("cannot read SV__SQL_OUTCOMES from core/queries.h")
        ceil_claim = (self.CEILING_CLAIM.replace("%(limit)s", "$1::integer")
                      .replace("%(owner)s", "$2::bigint"))
        ceil_done = self.CEILING_COMPLETE.replace("%(ids)s", "$1::bigint[]")
        costs = {}

        def check(res, what):
            if res.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                raise BenchError(f"{what} failed: {res.error_message.decode()}")
            return res

        for mode in ("raw", "daemon"):
            self.reset()
            self.enqueue_bulk(n)
            self.settle()
            t_claim = t_done = 0.0
            done = 0
            with self.connect() as c:
                pg = c.pgconn
                check(pg.prepare(b"c", (ceil_claim if mode == "raw" else self.claim_sql).encode()),
                      "prepare")
                check(pg.prepare(b"d", (ceil_done if mode == "raw" else outcomes_sql).encode()),
                      "prepare")
                claim_params = ([str(batch).encode(), b"-1"] if mode == "raw"
                                else self._claim_params(batch))
                while True:
                    t0 = time.perf_counter()
                    res = check(pg.exec_prepared(b"c", claim_params), f"{mode} claim")
                    t1 = time.perf_counter()
                    rows = res.ntuples
                    if rows == 0:
                        break
                    ids = [res.get_value(i, 0).decode() for i in range(rows)]
                    if mode == "raw":
                        params = [("{" + ",".join(ids) + "}").encode()]
                    else:  # what the daemon sends for noop successes
                        attempts = [res.get_value(i, 4).decode() for i in range(rows)]
                        params = [b"-1", ("[" + ",".join(
                            f'{{"id":{i},"attempt":{a},"state":"succeeded"}}'
                            for i, a in zip(ids, attempts)) + "]").encode()]
                    t2 = time.perf_counter()
                    check(pg.exec_prepared(b"d", params), f"{mode} completion")
                    t3 = time.perf_counter()
                    t_claim += t1 - t0
                    t_done += t3 - t2
                    done += rows
            counts = self.counts()
            if counts.get("succeeded", 0) != n:
                raise BenchError(f"statement costs ({mode}): expected {n} succeeded, {counts}")
            names = (("raw claim", "raw complete") if mode == "raw"
                     else ("daemon claim (sv_claim)", "daemon outcomes (sv_outcomes)"))
            costs[names[0]] = t_claim / done * 1e6
            costs[names[1]] = t_done / done * 1e6
        return costs

    def claim_index_variants(self):
        return ["full_index"]

    def use_claim_index_variant(self, name):
        store = self

        class _Variant:
            """Replaces the partial index sv_jobs_ready by a plain index on the same columns
            (what a schema without partial indexes would have), and puts it back."""

            def __enter__(self):
                self.ddl = store.conn.execute(
                    "SELECT pg_get_indexdef('sv_jobs_ready'::regclass)").fetchone()[0]
                store.conn.execute("DROP INDEX sv_jobs_ready")
                store.conn.execute(
                    "CREATE INDEX bench_jobs_order ON sv_jobs (priority, run_at, id)")
                store.conn.execute("ANALYZE sv_jobs")
                return self

            def __exit__(self, *exc):
                store.conn.execute("DROP INDEX IF EXISTS bench_jobs_order")
                store.conn.execute(self.ddl)
                store.conn.execute("ANALYZE sv_jobs")
                return False

        if name != "full_index":
            raise ValueError(name)
        return _Variant()


# --------------------------------------------------------------------------------------
# Figures.


class Figures:
    def __init__(self, context):
        self.items = []
        self.context = context

    def add(self, figure, config, value, unit, target=None, meets=None, **info):
        item = {"figure": figure, "config": config, "value": value, "unit": unit}
        if target is not None:
            item["target"] = target
            item["meets_target"] = meets
        item.update({k: v for k, v in info.items() if v is not None and v != ""})
        self.items.append(item)
        return item

    def get(self, figure, config):
        for it in self.items:
            if it["figure"] == figure and it["config"] == config:
                return it["value"]
        return None


def _fmt(value, unit):
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "nan"
    if unit in ("jobs/s",):
        return f"{value:,.0f}"
    if unit in ("ratio",):
        return f"{value:.2f}"
    if unit in ("ms", "us"):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if unit in ("MB", "s"):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def print_table(figs, out=sys.stdout):
    ctx = figs.context
    w = out.write
    w("\n")
    w(f"supervisor-worker benchmark  {ctx['date']}  store: {ctx['store']['store']} "
      f"{ctx['store']['version']} ({ctx['store']['server']}, {ctx['store']['connection']})\n")
    w(f"machine: {ctx['nproc']} CPUs, {ctx['cpu']}; daemon: {ctx['binary']} "
      f"({ctx['build']} build)\n")
    w(f"jobs {ctx['jobs']:,}, repeat {ctx['repeat']} (median), "
      f"{'quick' if ctx['quick'] else 'full'} configuration\n\n")
    rows = [("figure", "config", "value", "unit", "target", "notes")]
    for it in figs.items:
        if it["figure"] == "environment":
            continue
        target = it.get("target", "")
        if target:
            target = f"{target} {'ok' if it.get('meets_target') else 'MISSED'}"
        rows.append((it["figure"], it["config"], _fmt(it["value"], it["unit"]), it["unit"],
                     target, it.get("note", "")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    for j, r in enumerate(rows):
        line = "  ".join(
            (str(c).rjust(widths[i]) if i == 2 else str(c).ljust(widths[i]))
            for i, c in enumerate(r[:5]))
        w(f"{line}  {r[5]}".rstrip() + "\n")
        if j == 0:
            w("  ".join("-" * x for x in widths) + "\n")
    w("\n")


# --------------------------------------------------------------------------------------
# The benchmark.


class Bench:
    def __init__(self, args, store, binary, plugins_dir, workdir):
        self.a = args
        self.store = store
        self.binary = binary
        self.plugins_dir = plugins_dir
        self.workdir = workdir
        self.n_daemon = 0
        self.env = dict(os.environ)

    def daemon(self, extra, one_shot=False):
        self.n_daemon += 1
        args = [*self.store.daemon_args(), "--plugins-dir", str(self.plugins_dir),
                *(["--one-shot"] if one_shot else []), *extra]
        return Daemon(self.binary, args, self.workdir / f"daemon-{self.n_daemon}.log",
                      env=self.env)

    def check_all_succeeded(self, n, what):
        counts = self.store.counts()
        total = sum(counts.values())
        if counts.get("succeeded", 0) != n or total != n:
            raise BenchError(f"{what}: expected {n} succeeded jobs, the table holds {counts}")

    # -- drain

    def drain_once(self, n, extra, fill_direct=False):
        self.store.reset()
        if fill_direct:
            self.store.fill(n, 0)
            enq = None
        else:
            enq = self.store.enqueue_bulk(n)
        self.store.settle()
        d = self.daemon(extra, one_shot=True)
        elapsed = d.wait(timeout=max(120.0, n / 500.0))
        if d.status != 0:
            raise BenchError(f"`run --one-shot {' '.join(extra)}` exited with status "
                             f"{d.status}:\n{tail(d.log())}")
        self.check_all_succeeded(n, f"drain {' '.join(extra) or 'default'}")
        window = self.store.db_window_s()
        return {"s": elapsed, "jobs_per_s": n / elapsed, "enqueue_s": enq,
                "db_window_jobs_per_s": n / window if window else None,
                "peak_rss_kb": d.peak_rss_kb(), "cpu_s": d.cpu_s()}

    def ceiling_once(self, n, conns, batch):
        self.store.reset()
        self.store.enqueue_bulk(n)
        self.store.settle()
        s = self.store.raw_ceiling(conns=conns, batch=batch, timeout=max(120.0, n / 50.0))
        self.check_all_succeeded(n, f"raw ceiling ({conns} x {batch})")
        return n / s

    def run_drains(self, figs, ceilings=None):
        """The drain figures. With ceilings (a list), a raw-ceiling run follows each default
        drain, so that each ratio compares two runs made moments apart."""
        a = self.a
        configs = [
            ("default", [], a.jobs),
            ("max-workers=1", ["--max-workers", "1"], a.jobs),
            ("max-workers=16", ["--max-workers", "16"], a.jobs),
            # What the local queue buys: claims sized to the free slots only.
            ("prefetch=0", ["--prefetch", "0"], min(a.jobs, a.prefetch0_jobs)),
        ]
        enqueue_rates = []
        for name, extra, n in configs:
            runs = []
            for r in range(a.repeat):
                log(f"drain {name}: {n:,} jobs, run {r + 1}/{a.repeat}")
                res = self.drain_once(n, extra)
                log(f"  {res['s']:.3f} s, {res['jobs_per_s']:,.0f} jobs/s, "
                    f"peak RSS {res['peak_rss_kb'] / 1024:.1f} MB, CPU {res['cpu_s']:.2f} s")
                runs.append(res)
                if res["enqueue_s"] and n == a.jobs:
                    enqueue_rates.append(n / res["enqueue_s"])
                if name == "default" and ceilings is not None:
                    log(f"raw SQL ceiling: {a.jobs:,} jobs, 2 connections, batches of 500, "
                        f"run {r + 1}/{a.repeat}")
                    ceilings.append(self.ceiling_once(a.jobs, 2, 500))
                    log(f"  {ceilings[-1]:,.0f} jobs/s")
            med = statistics.median(x["jobs_per_s"] for x in runs)
            window = statistics.median(x["db_window_jobs_per_s"] or 0 for x in runs)
            each = ", ".join(f"{x['jobs_per_s']:,.0f}" for x in runs)
            figs.add("drain_jobs_per_s", name, med, "jobs/s", jobs=n,
                     runs=[round(x["jobs_per_s"], 1) for x in runs],
                     db_window_jobs_per_s=round(window, 1),
                     note=(f"runs {each}; " if len(runs) > 1 else "")
                     + f"first claim to last outcome {window:,.0f}/s")
            if name == "default":
                self.default_runs = runs
        return enqueue_rates

    # -- raw ceiling

    def run_ceiling(self, figs, runs):
        a = self.a
        if not runs:  # the drains did not run: the ceiling on its own
            for r in range(a.repeat):
                log(f"raw SQL ceiling: {a.jobs:,} jobs, 2 connections, batches of 500, "
                    f"run {r + 1}/{a.repeat}")
                runs.append(self.ceiling_once(a.jobs, 2, 500))
                log(f"  {runs[-1]:,.0f} jobs/s")
        ceiling = statistics.median(runs)
        figs.add("raw_ceiling_jobs_per_s", "2 conns x 500", ceiling, "jobs/s", jobs=a.jobs,
                 runs=[round(x, 1) for x in runs],
                 note=("runs " + ", ".join(f"{x:,.0f}" for x in runs)) if len(runs) > 1 else "")
        drains = getattr(self, "default_runs", None)
        if drains and len(drains) == len(runs):
            # Each drain against the ceiling run right after it; the median of those ratios.
            pairs = [d["jobs_per_s"] / c for d, c in zip(drains, runs)]
            ratio = statistics.median(pairs)
            figs.add("drain_ratio_of_ceiling", "default", ratio, "ratio", target=">= 0.80",
                     meets=ratio >= 0.80, runs=[round(x, 3) for x in pairs],
                     note=("median of per-run ratios " + ", ".join(f"{x:.2f}" for x in pairs))
                     if len(pairs) > 1 else "")
        for name in ("max-workers=1", "max-workers=16"):
            v = figs.get("drain_jobs_per_s", name)
            if v is not None:
                figs.add("drain_ratio_of_ceiling", name, v / ceiling, "ratio",
                         note="median drain / median ceiling")
        # What a second connection buys, in raw SQL: the same loop on one connection.
        log(f"raw SQL ceiling on one connection: {a.jobs:,} jobs, batches of 500")
        figs.add("raw_ceiling_jobs_per_s", "1 conn x 500", self.ceiling_once(a.jobs, 1, 500),
                 "jobs/s", jobs=a.jobs, note="one connection, for comparison")
        # What batching buys, in raw SQL: one job per claim and per completion.
        n1 = min(a.jobs, a.batch1_jobs)
        log(f"raw SQL, one job per statement: {n1:,} jobs, 2 connections")
        figs.add("raw_ceiling_jobs_per_s", "2 conns x 1", self.ceiling_once(n1, 2, 1), "jobs/s",
                 jobs=n1, note="unbatched claims and completions, for comparison")

    def run_sql(self, figs):
        a = self.a
        log(f"statement costs: {a.jobs:,} jobs, batches of 500, one connection")
        try:
            costs = self.store.statement_costs(a.jobs, 500)
        except NotImplementedError:
            return
        for name, us in costs.items():
            figs.add("sql_us_per_job", name, us, "us", jobs=a.jobs, batch=500,
                     note="one connection, client-side round trip per statement")
        self.store.reset()

    # -- latency, idle RSS

    def run_latency(self, figs):
        a = self.a
        self.store.reset()
        self.store.settle()
        d = self.daemon([])
        try:
            d.wait_ready()
            time.sleep(2.0)
            idle_kb = d.proc_status("VmRSS")
            anon_kb = d.proc_status("RssAnon")
            file_kb = d.proc_status("RssFile")
            figs.add("idle_rss_mb", "default", idle_kb / 1024.0, "MB", target="<= 8",
                     meets=idle_kb / 1024.0 <= 8.0, rss_anon_mb=anon_kb / 1024.0,
                     rss_file_mb=file_kb / 1024.0,
                     note=f"VmRSS after 2 s idle: {anon_kb / 1024.0:.2f} MB anonymous, "
                          f"{file_kb / 1024.0:.2f} MB mapped files (shared libraries)")
            log(f"latency: {a.latency_jobs:,} jobs, one transaction each, at {a.latency_rate:g}/s")
            prod = self.store.producer()
            sent = {}
            try:
                interval = 1.0 / a.latency_rate
                t0 = time.perf_counter()
                for i in range(a.latency_jobs):
                    delay = t0 + i * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    job_id, t_us = prod.enqueue("bench.clock")
                    sent[job_id] = t_us
            finally:
                prod.close()
            deadline = time.monotonic() + 60
            while self.store.counts().get("succeeded", 0) < a.latency_jobs:
                if not d.running():
                    raise BenchError(f"the daemon exited during the latency run:\n"
                                     f"{tail(d.log())}")
                if time.monotonic() > deadline:
                    raise BenchError(f"latency: jobs still not done after 60 s: "
                                     f"{self.store.counts()}\n{tail(d.log())}")
                time.sleep(0.05)
            status = d.stop()
            if status != 0:
                raise BenchError(f"the daemon exited with {status} on SIGTERM:\n{tail(d.log())}")
        finally:
            d.kill()
        self.check_all_succeeded(a.latency_jobs, "latency")
        results = self.store.results("bench.clock")
        lat = []
        for job_id, t_commit in sent.items():
            r = results.get(job_id)
            if not isinstance(r, dict) or "t_us" not in r:
                raise BenchError(f"job {job_id} has no t_us result: {r!r}")
            lat.append((r["t_us"] - t_commit) / 1000.0)
        lat.sort()
        targets = {"p50": 1.0, "p99": 2.5}
        for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
            v = lat[-1] if p == 100 else percentile(lat, p)
            t = targets.get(name)
            figs.add("latency_ms", name, v, "ms",
                     target=f"<= {t:g}" if t else None, meets=(v <= t) if t else None,
                     jobs=len(lat))
        negative = sum(1 for x in lat if x < 0)
        figs.items[-1]["min_ms"] = lat[0]
        figs.items[-1]["note"] = f"min {lat[0]:.3f} ms" + (
            f"; {negative} handler(s) started before the producer saw its commit return"
            if negative else "")

    # -- enqueue

    def run_enqueue(self, figs, bulk_rates):
        a = self.a
        self.store.reset()
        self.store.settle()
        log(f"enqueue: {a.enqueue_jobs:,} jobs, one transaction each")
        prod = self.store.producer()
        try:
            t0 = time.perf_counter()
            for _ in range(a.enqueue_jobs):
                prod.enqueue("noop")
            s = time.perf_counter() - t0
        finally:
            prod.close()
        figs.add("enqueue_jobs_per_s", "one per transaction", a.enqueue_jobs / s, "jobs/s",
                 jobs=a.enqueue_jobs, note="sv_enqueue(), autocommit, one connection")
        if not bulk_rates:
            self.store.reset()
            bulk_rates = [a.jobs / self.store.enqueue_bulk(a.jobs)]
        figs.add("enqueue_jobs_per_s", "bulk", statistics.median(bulk_rates), "jobs/s",
                 jobs=a.jobs, runs=[round(x, 1) for x in bulk_rates],
                 note="SELECT sv_enqueue('noop') FROM generate_series(1, N)")
        self.store.reset()

    # -- deep queue

    def run_deep(self, figs):
        """Claim cost by queue depth. Three tables, each built by plain INSERTs and vacuumed:
        A: the shallow queue alone; B: the same queue behind the finished rows; C: B with
        the deep queue's remaining jobs added. The target compares C with A."""
        a = self.a
        q0, qn, fn = a.shallow_queued, a.deep_queued, a.deep_finished
        steps = [
            ("shallow", f"{q0:,} queued", lambda: (self.store.reset(), self.store.fill(q0, 0))),
            ("shallow+done", f"{q0:,} queued + {fn:,} done",
             lambda: (self.store.reset(), self.store.fill(q0, fn))),
            ("deep", f"{qn:,} queued + {fn:,} done", lambda: self.store.fill(qn - q0, 0)),
        ]
        if fn == 0 or qn <= q0:
            steps = [steps[0], ("deep", f"{qn:,} queued + {fn:,} done",
                                lambda: (self.store.reset(), self.store.fill(qn, fn)))]
        cost = {}
        for label, config, build in steps:
            log(f"deep queue: building {config}")
            t0 = time.perf_counter()
            build()
            self.store.settle()
            log(f"  built in {time.perf_counter() - t0:.1f} s; {a.claims} claims of "
                f"{a.claim_batch}")
            ms, med, scan = self.store.claim_cost(a.claim_batch, a.claims, warmup=10)
            cost[label] = ms
            figs.add("claim_ms", config, ms, "ms",
                     batch=a.claim_batch, claims=a.claims, median_ms=med, plan=scan,
                     note=f"mean of {a.claims}, median {med:.3f}; {scan}")
            log(f"  {ms:.3f} ms per claim, median {med:.3f} ({scan})")
        ratio = cost["deep"] / cost["shallow"]
        figs.add("deep_queue_claim_ratio", f"{qn:,}+{fn:,} vs {q0:,}", ratio, "ratio",
                 target="<= 1.5", meets=ratio <= 1.5)
        if "shallow+done" in cost:
            figs.add("deep_queue_claim_ratio", f"{qn:,}+{fn:,} vs {q0:,}+{fn:,}",
                     cost["deep"] / cost["shallow+done"], "ratio",
                     note="the same finished rows in both tables")
        # What the partial index buys: the deep table with a plain index instead.
        for variant in self.store.claim_index_variants():
            with self.store.use_claim_index_variant(variant):
                n = max(3, a.claims // 20)
                log(f"deep queue with {variant}: {n} claims")
                ms, med, scan = self.store.claim_cost(a.claim_batch, n, warmup=1)
            figs.add("claim_ms", f"deep, {variant}", ms, "ms", batch=a.claim_batch, claims=n,
                     median_ms=med, plan=scan,
                     note=f"{ms / cost['deep']:.1f}x the partial index; {scan}")
        self.store.reset()

    # -- peak RSS at depth

    def run_big_drain(self, figs):
        n = self.a.rss_jobs
        log(f"peak RSS: draining {n:,} jobs (default settings)")
        res = self.drain_once(n, [], fill_direct=True)
        log(f"  {res['s']:.1f} s, {res['jobs_per_s']:,.0f} jobs/s, peak RSS "
            f"{res['peak_rss_kb'] / 1024:.1f} MB")
        try:
            profile = self.store.rate_profile(10)
        except NotImplementedError:
            profile = None
        mb = res["peak_rss_kb"] / 1024.0
        figs.add("peak_rss_mb", f"drain {n:,}", mb, "MB", target="<= 32", meets=mb <= 32.0)
        figs.add("drain_jobs_per_s", f"default, {n:,} jobs", res["jobs_per_s"], "jobs/s",
                 jobs=n, rate_by_tenth=[round(x) for x in profile] if profile else None,
                 note="one run, filled by INSERT" + (
                     "; by tenth: " + " ".join(f"{x / 1000:.1f}k" for x in profile)
                     if profile else ""))
        self.store.reset()

    def resources(self, figs):
        runs = self.default_runs
        n = self.a.jobs
        peak = statistics.median(r["peak_rss_kb"] for r in runs) / 1024.0
        figs.add("peak_rss_mb", f"drain {n:,}", peak, "MB",
                 target="<= 32" if n >= 1_000_000 else None,
                 meets=(peak <= 32.0) if n >= 1_000_000 else None)
        cpu = statistics.median(r["cpu_s"] for r in runs) * 100_000 / n
        figs.add("cpu_s_per_100k_jobs", "default", cpu, "s", note="daemon user + sys")

    def run(self):
        a = self.a
        figs = Figures(self.context())
        figs.add("environment", "", None, None, **figs.context)
        bulk = []
        ceilings = [] if "ceiling" in a.only else None
        if "drain" in a.only:
            bulk = self.run_drains(figs, ceilings)
            self.resources(figs)
        if "ceiling" in a.only:
            self.run_ceiling(figs, ceilings)
        if "sql" in a.only:
            self.run_sql(figs)
        if "latency" in a.only:
            self.run_latency(figs)
        if "enqueue" in a.only:
            self.run_enqueue(figs, bulk)
        if "rss" in a.only and a.rss_jobs:
            self.run_big_drain(figs)
        if "deep" in a.only:
            self.run_deep(figs)
        return figs

    def context(self):
        cpu = "?"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": platform.node(),
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "kernel": platform.release(),
            "store": self.store.describe(),
            "binary": str(self.binary),
            "build": build_options(self.binary.parent.parent),
            "jobs": self.a.jobs,
            "repeat": self.a.repeat,
            "quick": self.a.quick,
        }


# --------------------------------------------------------------------------------------


def find_build(arg):
    candidates = [Path(arg)] if arg else []
    if arg and not Path(arg).is_absolute():
        candidates.append(SOURCE_ROOT / arg)
    if not arg:
        candidates.append(SOURCE_ROOT / "build")
    for c in candidates:
        if (c / "core" / "supervisor-worker").is_file():
            return c.resolve()
    raise BenchError(f"no core/supervisor-worker in {' or '.join(map(str, candidates))}: build "
                     "first (meson setup build --buildtype=release && ninja -C build) and "
                     "pass --build DIR")


def build_options(build):
    """buildtype and sanitizers of a meson build directory, as a short string."""
    try:
        opts = {o["name"]: o["value"] for o in json.loads(
            (build / "meson-info" / "intro-buildoptions.json").read_text())}
    except (OSError, ValueError, KeyError):
        return "unknown"
    text = str(opts.get("buildtype", "?"))
    if opts.get("b_sanitize", "none") != "none":
        text += f", sanitize={opts['b_sanitize']}"
    return text


def make_plugins_dir(build, workdir):
    """A plugin directory holding noop.so and bench_clock.so, owned by us, mode 0755 (the
    host refuses plugins that group or others can write)."""
    d = workdir / "plugins"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    noop = build / "plugins" / "noop.so"
    if not noop.is_file():
        raise BenchError(f"{noop} is missing: build the bundled plugins")
    shutil.copy(noop, d / "noop.so")
    clock = build / "test" / "bench" / "bench_clock.so"
    if clock.is_file():
        shutil.copy(clock, d / "bench_clock.so")
    else:
        # test/meson.build without subdir('bench'), or -Dtests=false: build it here.
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise BenchError(f"{clock} is missing and there is no C compiler to build it")
        jansson = subprocess.run(["pkg-config", "--cflags", "--libs", "jansson"],
                                 capture_output=True, text=True)
        flags = jansson.stdout.split() if jansson.returncode == 0 else ["-ljansson"]
        log(f"{clock} not built; compiling test/bench/bench_clock.c with {cc}")
        proc = subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-std=gnu11",
             "-I", str(SOURCE_ROOT / "sdk" / "include"),
             str(SOURCE_ROOT / "test" / "bench" / "bench_clock.c"),
             "-o", str(d / "bench_clock.so"), *flags],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"cannot build bench_clock.so:\n{proc.stderr}")
    for f in d.iterdir():
        os.chmod(f, 0o755)
    return d


PHASES = ("drain", "ceiling", "sql", "latency", "enqueue", "rss", "deep")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="supervisor-worker benchmark (issue 5); see docs/performance.md",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--build", default=None,
                   help="meson build directory (default: <source>/build); use a release build")
    p.add_argument("--quick", action="store_true",
                   help="small configuration for CI: finishes in well under a minute")
    p.add_argument("--jobs", type=int, default=None, help="jobs per drain (100000; quick 5000)")
    p.add_argument("--repeat", type=int, default=None, help="runs per drain figure (3; quick 1)")
    p.add_argument("--latency-jobs", type=int, default=None, help="1000; quick 200")
    p.add_argument("--latency-rate", type=float, default=100.0, help="enqueues per second")
    p.add_argument("--enqueue-jobs", type=int, default=None, help="5000; quick 1000")
    p.add_argument("--shallow-queued", type=int, default=10_000)
    p.add_argument("--deep-queued", type=int, default=None, help="1000000; quick 20000")
    p.add_argument("--deep-finished", type=int, default=None, help="1000000; quick 20000")
    p.add_argument("--claims", type=int, default=None, help="claims per deep-queue figure "
                   "(200; quick 50)")
    p.add_argument("--claim-batch", type=int, default=100)
    p.add_argument("--rss-jobs", type=int, default=None,
                   help="one extra default drain of this many jobs for the peak-RSS target "
                        "(1000000; quick 0 = skip)")
    p.add_argument("--prefetch0-jobs", type=int, default=None,
                   help="jobs for the --prefetch 0 drain (10000; quick 2000)")
    p.add_argument("--batch1-jobs", type=int, default=None,
                   help="jobs for the one-per-statement raw figure (5000; quick 1000)")
    p.add_argument("--only", default=",".join(PHASES),
                   help="comma-separated phases to run, of: " + ", ".join(PHASES))
    p.add_argument("--json-out", default=None, help="also write the JSON lines to this file")
    p.add_argument("--tcp", action="store_true",
                   help="connect over 127.0.0.1 instead of the unix socket (throwaway server)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    a = p.parse_args(argv)
    full = {"jobs": 100_000, "repeat": 3, "latency_jobs": 1000, "enqueue_jobs": 5000,
            "deep_queued": 1_000_000, "deep_finished": 1_000_000, "claims": 200,
            "rss_jobs": 1_000_000, "prefetch0_jobs": 10_000, "batch1_jobs": 5000}
    quick = {"jobs": 5000, "repeat": 1, "latency_jobs": 200, "enqueue_jobs": 1000,
             "deep_queued": 20_000, "deep_finished": 20_000, "claims": 50,
             "rss_jobs": 0, "prefetch0_jobs": 2000, "batch1_jobs": 1000}
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.jobs < 1 or a.repeat < 1 or a.latency_jobs < 1 or a.enqueue_jobs < 1:
        p.error("--jobs, --repeat, --latency-jobs and --enqueue-jobs must be positive")
    a.only = [x.strip() for x in a.only.split(",") if x.strip()]
    bad = [x for x in a.only if x not in PHASES]
    if bad:
        p.error(f"unknown phase(s) {', '.join(bad)}; phases: {', '.join(PHASES)}")
    if a.shallow_queued < a.claim_batch or a.deep_queued < a.claim_batch:
        p.error("the deep-queue configurations need at least --claim-batch queued jobs")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="sv-bench-"))
    os.chmod(workdir, 0o755)  # the postgres user reaches its directory through it
    store = None
    status = 1
    try:
        build = find_build(a.build)
        binary = build / "core" / "supervisor-worker"
        options = build_options(build)
        if not options.startswith("release") or "sanitize" in options:
            log(f"warning: {build} is a {options} build; figures are meant for a release "
                "build (meson setup BUILD --buildtype=release)")
        plugins = make_plugins_dir(build, workdir)
        store = PostgresStore(workdir, use_tcp=a.tcp, keep=a.keep)
        store.setup(binary)
        t0 = time.monotonic()
        figs = Bench(a, store, binary, plugins, workdir).run()
        log(f"done in {time.monotonic() - t0:.0f} s")
        print_table(figs)
        lines = [json.dumps(it, sort_keys=False) for it in figs.items]
        print("\n".join(lines), flush=True)
        if a.json_out:
            Path(a.json_out).write_text("\n".join(lines) + "\n")
        status = 0
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({e})", file=sys.stderr)
        status = 130
    finally:
        for d in list(Daemon.live):
            d.kill()
        if store is not None:
            store.teardown()
        if a.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
