"""`supervisor-worker enqueue` (issue 3): prints the new job's id; a bad flag, value or
payload gets one line on stderr, exit status 2, and changes nothing in the table."""

import datetime
import re

import pytest
from psycopg.rows import dict_row


def row(db, job_id):
    with db.connect(row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM sv_jobs WHERE id = %s", (job_id,)).fetchone()


def enq(cli, db, *args, check=True):
    return cli.run("enqueue", "--dsn", db.dsn, *args, check=check, timeout=20)


def test_prints_the_id_and_stores_every_flag(cli, db):
    out = enq(
        cli, db, "--queue", "mail", "--priority", "-7", "--max-attempts", "4", "--timeout",
        "2s", "--unique-key", "k1", "test.echo", '{"to": "a@b", "n": [1, 2.5, null]}',
    )
    assert re.fullmatch(r"[0-9]+\n", out.stdout), out.stdout
    assert out.stderr == ""
    r = row(db, int(out.stdout))
    assert r["type"] == "test.echo"
    assert r["payload"] == {"to": "a@b", "n": [1, 2.5, None]}
    assert (r["queue"], r["priority"], r["max_attempts"], r["timeout_ms"], r["unique_key"]) == (
        "mail", -7, 4, 2000, "k1",
    )
    assert (r["state"], r["attempts"], r["errors"], r["owner"]) == ("queued", 0, [], None)


def test_defaults(cli, db):
    r = row(db, int(enq(cli, db, "test.echo").stdout))
    assert r["payload"] == {}
    assert (r["queue"], r["priority"], r["max_attempts"], r["timeout_ms"], r["unique_key"]) == (
        "default", 0, None, None, None,
    )
    assert db.scalar("SELECT run_at <= now() FROM sv_jobs WHERE id = %s", (r["id"],))


def test_delay_and_run_at(cli, db):
    later = int(enq(cli, db, "--delay", "1h", "test.echo").stdout)
    secs = db.scalar(
        "SELECT extract(epoch FROM run_at - created_at) FROM sv_jobs WHERE id = %s", (later,)
    )
    assert 3590 < secs < 3610
    at = int(enq(cli, db, "--run-at", "2030-01-31T12:00:00Z", "test.echo").stdout)
    assert row(db, at)["run_at"] == datetime.datetime(2030, 1, 31, 12, tzinfo=datetime.timezone.utc)


def test_unique_key(cli, db, make_plugins_dir):
    first = enq(cli, db, "--unique-key", "league-7", "test.echo", '{"v": 1}').stdout
    dup = enq(cli, db, "--unique-key", "league-7", "test.echo", '{"v": 2}').stdout
    assert dup == first
    # Another type, or another key, is another job.
    other_type = enq(cli, db, "--unique-key", "league-7", "test.sleep").stdout
    other_key = enq(cli, db, "--unique-key", "league-8", "test.echo").stdout
    assert len({first, other_type, other_key}) == 3
    assert db.scalar("SELECT count(*) FROM sv_jobs") == 3
    assert row(db, int(first))["payload"] == {"v": 1}  # the duplicate changed nothing

    # Once the first one has run, the key is free again.
    proc = cli.run(
        "run", "--one-shot", "--dsn", db.dsn, "--plugins-dir", make_plugins_dir("testjobs"),
        "--poll-interval", "50ms", timeout=30,
    )
    assert proc.returncode == 0
    assert row(db, int(first))["state"] == "succeeded"
    again = enq(cli, db, "--unique-key", "league-7", "test.echo", '{"v": 3}').stdout
    assert again != first
    assert row(db, int(again))["state"] == "queued"


def test_unique_key_in_sql(db):
    a = db.scalar("SELECT sv_enqueue('t.x', '{}', unique_key => 'k')")
    b = db.scalar("SELECT sv_enqueue('t.x', '{\"other\": 1}', unique_key => 'k')")
    assert a == b
    db.query("UPDATE sv_jobs SET state = 'dead', finished_at = now() WHERE id = %s", (a,))
    c = db.scalar("SELECT sv_enqueue('t.x', '{}', unique_key => 'k')")
    assert c != a


BAD = {
    "invalid-json": ("test.echo", '{"a": '),
    "json-trailing-garbage": ("test.echo", '{"a": 1} x'),
    "json-duplicate-key": ("test.echo", '{"a": 1, "a": 2}'),
    "unknown-flag": ("--frobnicate", "test.echo"),
    "missing-value": ("test.echo", "--priority"),
    "priority-not-int": ("--priority", "high", "test.echo"),
    "priority-overflow": ("--priority", "99999999999", "test.echo"),
    "priority-float": ("--priority", "1.5", "test.echo"),
    "delay-garbage": ("--delay", "soon", "test.echo"),
    "delay-negative": ("--delay", "-5s", "test.echo"),
    "delay-unit": ("--delay", "5parsecs", "test.echo"),
    "run-at-garbage": ("--run-at", "next tuesday-ish", "test.echo"),
    "run-at-and-delay": ("--run-at", "2030-01-01T00:00:00Z", "--delay", "5s", "test.echo"),
    "bad-type-name": ("bad type!",),
    "type-too-long": ("x" * 129,),
    "empty-type": ("",),
    "missing-type": (),
    "max-attempts-0": ("--max-attempts", "0", "test.echo"),
    "timeout-0": ("--timeout", "0", "test.echo"),
    "empty-queue": ("--queue", "", "test.echo"),
    "empty-unique-key": ("--unique-key", "", "test.echo"),
    "extra-argument": ("test.echo", "{}", "extra"),
}


@pytest.mark.parametrize("args", list(BAD.values()), ids=list(BAD))
def test_bad_input_changes_nothing(cli, db, args):
    db.query("SELECT sv_enqueue('test.echo', '{\"existing\": true}')")
    before = db.query("SELECT * FROM sv_jobs ORDER BY id")
    proc = enq(cli, db, *args, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("supervisor-worker enqueue: "), proc.stderr
    assert db.query("SELECT * FROM sv_jobs ORDER BY id") == before


def test_database_down_is_not_a_usage_error(cli, pg):
    proc = cli.run(
        "enqueue", "--dsn", f"host=127.0.0.1 port={pg.port} dbname=no_such_db user=postgres",
        "test.echo", check=False, timeout=20,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "cannot connect" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
