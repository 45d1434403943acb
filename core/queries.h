/*
 * The daemon's SQL, prepared once per connection. Every write to a job is guarded by its
 * owner and state (and attempt), so a late writer can never overwrite a newer state.
 */
#ifndef SV_CORE_QUERIES_H
#define SV_CORE_QUERIES_H

/* $1 host, $2 pid, $3 version, $4 worker count, $5 job types. Returns id and now(). */
#define SV__SQL_REGISTER                                                                           \
    "INSERT INTO sv_workers (host, pid, version, worker_count, job_types)"                         \
    " VALUES ($1, $2, $3, $4, $5::text[]) RETURNING id, now()"

/*
 * $1 owner, $2 job types, $3 how many, $4 lease (ms), $5 each type's default max attempts,
 * $6 one-shot cutoff (NULL: none). Walks sv_jobs_ready in order and skips rows another
 * supervisor is claiming at the same moment. The ids go through an array so that the
 * update always finds its rows by primary key (a join let the planner pick a sequential
 * scan of a small table, which grows with it).
 */
#define SV__SQL_CLAIM                                                                              \
    "WITH picked AS ("                                                                             \
    "  SELECT id FROM sv_jobs"                                                                     \
    "   WHERE state = 'queued' AND run_at <= now() AND type = ANY($2::text[])"                     \
    "     AND ($6::timestamptz IS NULL OR run_at <= $6::timestamptz)"                              \
    "   ORDER BY priority, run_at, id"                                                             \
    "   LIMIT $3::integer"                                                                         \
    "   FOR UPDATE SKIP LOCKED)"                                                                   \
    " UPDATE sv_jobs j"                                                                            \
    "    SET state = 'running', attempts = j.attempts + 1, owner = $1::bigint,"                    \
    "        started_at = now(),"                                                                  \
    "        lease_expires_at = now() + $4::bigint * interval '1 millisecond',"                    \
    "        max_attempts = coalesce(j.max_attempts, d.max_attempts)"                              \
    "   FROM unnest($2::text[], $5::integer[]) AS d(type, max_attempts)"                           \
    "  WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND d.type = j.type"                         \
    " RETURNING j.id, j.type, j.queue, j.payload, j.attempts, j.max_attempts,"                     \
    "           coalesce(j.timeout_ms, 0)"

/*
 * The outcome statements guard on owner without naming the state: owner is set exactly
 * while a job runs (a CHECK constraint), and a state condition would let the planner
 * drive the update from the running-jobs index, whose statistics are stale by nature (it
 * once hashed ten thousand running rows per batch: 100,000 jobs took 50 s instead of 4).
 * Without it, the rows are found by primary key.
 *
 * $1 owner, $2 a JSON array of outcomes {id, attempt, state, delay_ms, error, result,
 * followups, progress}. Follow-up jobs are inserted only for successes that were recorded. Returns
 * the number of jobs updated and of follow-ups enqueued.
 */
#define SV__SQL_OUTCOMES                                                                           \
    "WITH o AS ("                                                                                  \
    "  SELECT * FROM jsonb_to_recordset($2::jsonb) AS o(id bigint, attempt integer,"               \
    "         state text, delay_ms bigint, error text, result jsonb, followups jsonb,"             \
    "         progress jsonb)"                                                                     \
    "), upd AS ("                                                                                  \
    "  UPDATE sv_jobs j SET"                                                                       \
    "    state = CASE o.state WHEN 'retry' THEN 'queued' WHEN 'handback' THEN 'queued'"            \
    "            ELSE o.state END,"                                                                \
    "    attempts = CASE WHEN o.state = 'handback' THEN j.attempts - 1 ELSE j.attempts END,"       \
    "    result = CASE WHEN o.state = 'succeeded' THEN o.result ELSE j.result END,"                \
    "    errors = CASE WHEN o.error IS NULL THEN j.errors ELSE j.errors ||"                        \
    "             jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'at', now(),"        \
    "                                                  'error', o.error)) END,"                    \
    "    run_at = CASE o.state"                                                                    \
    "             WHEN 'retry' THEN now() + coalesce(o.delay_ms, 0) * interval '1 millisecond'"    \
    "             WHEN 'handback' THEN now() ELSE j.run_at END,"                                   \
    "    progress = coalesce(o.progress, j.progress),"                                             \
    "    finished_at = CASE WHEN o.state IN ('succeeded', 'dead') THEN now() END,"                 \
    "    owner = NULL, lease_expires_at = NULL"                                                    \
    "  FROM o"                                                                                     \
    "  WHERE j.id = o.id AND j.owner = $1::bigint"                                                 \
    "    AND j.attempts = o.attempt"                                                               \
    "  RETURNING j.id"                                                                             \
    "), spawned AS ("                                                                              \
    "  SELECT sv_enqueue(f->>'type', coalesce(f->'payload', '{}'),"                                \
    "         coalesce(f->>'queue', 'default'), coalesce((f->>'priority')::integer, 0),"           \
    "         now() + coalesce((f->>'delay_ms')::bigint, 0) * interval '1 millisecond',"           \
    "         (f->>'max_attempts')::integer, (f->>'timeout_ms')::integer,"                         \
    "         f->>'unique_key') AS id"                                                             \
    "    FROM o JOIN upd ON upd.id = o.id, jsonb_array_elements(o.followups) AS f"                 \
    "   WHERE o.state = 'succeeded' AND jsonb_typeof(o.followups) = 'array'"                       \
    ")"                                                                                            \
    " SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM spawned)"

/*
 * $1 owner, $2 job ids, $3 their attempts: successes without result or follow-ups, the
 * bulk of the traffic, with the same guard as SV__SQL_OUTCOMES and less to parse.
 */
#define SV__SQL_SUCCEEDED                                                                          \
    "UPDATE sv_jobs j SET state = 'succeeded', finished_at = now(), owner = NULL,"                 \
    "       lease_expires_at = NULL"                                                               \
    "  FROM unnest($2::bigint[], $3::integer[]) AS o(id, attempt)"                                 \
    " WHERE j.id = o.id AND j.owner = $1::bigint"                                                  \
    "   AND j.attempts = o.attempt"

/* $1 owner, $2 lease (ms), $3 status JSON, $4 progress [{id, progress}]. */
#define SV__SQL_HEARTBEAT                                                                          \
    "WITH w AS (UPDATE sv_workers SET heartbeat_at = now(), status = $3::jsonb"                    \
    "            WHERE id = $1::bigint),"                                                          \
    " p AS (SELECT * FROM jsonb_to_recordset($4::jsonb) AS p(id bigint, progress jsonb))"          \
    " UPDATE sv_jobs j"                                                                            \
    "    SET lease_expires_at = now() + $2::bigint * interval '1 millisecond',"                    \
    "        progress = coalesce((SELECT p.progress FROM p WHERE p.id = j.id), j.progress)"        \
    "  WHERE j.owner = $1::bigint AND j.state = 'running'"

/*
 * $1 default max attempts, $2 own id. Jobs whose lease expired go back to the queue with
 * the failed attempt recorded (or die when it was their last), whoever else held them. A
 * supervisor never rescues its own jobs: while it lives it knows them, renews their leases
 * once it can, and hands back the ones it gave up (reconcile).
 */
#define SV__SQL_RESCUE                                                                             \
    "WITH expired AS ("                                                                            \
    "  SELECT j.id, j.owner FROM sv_jobs j"                                                        \
    "   WHERE j.state = 'running' AND j.lease_expires_at < now()"                                  \
    "     AND j.owner <> $2::bigint"                                                               \
    "   FOR UPDATE SKIP LOCKED"                                                                    \
    "), info AS ("                                                                                 \
    "  SELECT e.id, e.owner, w.host, w.pid FROM expired e"                                         \
    "    LEFT JOIN sv_workers w ON w.id = e.owner"                                                 \
    ")"                                                                                            \
    " UPDATE sv_jobs j SET"                                                                        \
    "    state = CASE WHEN j.attempts >= coalesce(j.max_attempts, $1::integer)"                    \
    "            THEN 'dead' ELSE 'queued' END,"                                                   \
    "    errors = j.errors || jsonb_build_array(jsonb_build_object("                               \
    "             'attempt', j.attempts, 'at', now(), 'error',"                                    \
    "             format('rescued: its supervisor (worker %s on %s, pid %s) stopped"               \
    " heartbeating', i.owner, coalesce(i.host, '?'), coalesce(i.pid::text, '?')))),"               \
    "    run_at = now() + least(interval '1 hour',"                                                \
    "             interval '1 second' * power(2, least(greatest(j.attempts, 1), 13) - 1)),"        \
    "    finished_at = CASE WHEN j.attempts >= coalesce(j.max_attempts, $1::integer)"              \
    "                  THEN now() END,"                                                            \
    "    owner = NULL, lease_expires_at = NULL"                                                    \
    "   FROM info i"                                                                               \
    "  WHERE j.id = i.id AND j.state = 'running' AND j.owner = i.owner"                            \
    " RETURNING j.id, j.type, j.state"

/* $1 host, $2 own id: other live-looking supervisors registered from this host. */
#define SV__SQL_PREDECESSORS                                                                       \
    "SELECT id, pid FROM sv_workers"                                                               \
    " WHERE host = $1 AND stopped_at IS NULL AND id <> $2::bigint"

/* $1 ids of dead supervisors: mark them stopped and expire their leases now. */
#define SV__SQL_RETIRE                                                                             \
    "WITH w AS (UPDATE sv_workers SET stopped_at = now()"                                          \
    "            WHERE id = ANY($1::bigint[]) AND stopped_at IS NULL)"                             \
    " UPDATE sv_jobs SET lease_expires_at = now() - interval '1 millisecond'"                      \
    "  WHERE owner = ANY($1::bigint[]) AND state = 'running'"

/*
 * $1 owner, $2 JSON array of the job ids this process knows it holds. After a reconnect,
 * anything else it holds in the table came from a claim whose answer was lost: hand it
 * back without spending the attempt.
 */
#define SV__SQL_RECONCILE                                                                          \
    "UPDATE sv_jobs SET state = 'queued', owner = NULL, lease_expires_at = NULL,"                  \
    "       attempts = attempts - 1, run_at = now()"                                               \
    " WHERE owner = $1::bigint AND state = 'running'"                                              \
    "   AND NOT id IN (SELECT value::bigint FROM jsonb_array_elements_text($2::jsonb))"            \
    " RETURNING id"

/*
 * $1 the job types this process handles: ready jobs of other types, counted per type. The
 * inner LIMIT bounds the cost however deep the queue is.
 */
#define SV__SQL_UNHANDLED                                                                          \
    "SELECT type, count(*) FROM ("                                                                 \
    "  SELECT type FROM sv_jobs"                                                                   \
    "   WHERE state = 'queued' AND run_at <= now() AND NOT (type = ANY($1::text[]))"               \
    "   LIMIT 10000) t"                                                                            \
    " GROUP BY type ORDER BY type"

/* $1 own id. */
#define SV__SQL_STOPPED                                                                            \
    "UPDATE sv_workers SET stopped_at = now(), heartbeat_at = now() WHERE id = $1::bigint"

#endif
