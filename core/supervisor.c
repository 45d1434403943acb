/* The supervisor's life cycle: start-up, heartbeats, rescue, reconnects and shutdown. */
#include "supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "notify.h"
#include "queries.h"
#include "supervisor_int.h"

/* Once the grace period is over and the jobs are handed back, handlers that ignore
 * cancellation get this long before the process exits without them. */
#define HANDBACK_EXIT_GRACE_MS 1000

/* How often to look for ready jobs that no plugin of this process handles. */
#define UNHANDLED_REPORT_MS 60000

void sv__run_opts_init(sv__run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dsn = "";
    o->max_workers = 4;
    o->poll_interval_ms = 1000;
    o->shutdown_timeout_ms = 30000;
    o->heartbeat_ms = 5000;
    o->dead_after_ms = 30000;
    o->rescue_interval_ms = 10000;
    o->stuck_after_ms = 5000;
    o->prefetch_max = 512;
}

static void begin_drain(sv__supervisor *sv, const char *why);
static void begin_close(sv__supervisor *sv);
static void run_rescue(sv__supervisor *sv);

static char *id_text(int64_t id, char buf[static 24])
{
    snprintf(buf, 24, "%" PRId64, id);
    return buf;
}

static bool result_ok(const PGresult *res, const char *what)
{
    if (res == NULL)
        return false; /* connection lost; already logged by pgconn */
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return true;
    const char *msg = PQresultErrorMessage(res);
    sv__log_error("%s failed: %.*s", what, (int)strcspn(msg, "\n"), msg);
    return false;
}

/* ---- Progress: the one place that decides what happens next ---- */

void sv__supervisor_progress(sv__supervisor *sv)
{
    switch (sv->phase) {
    case SV__PHASE_RUNNING:
        if (sv->opts.one_shot && sv->one_shot_drained && !sv->claim_inflight && sv->busy == 0 &&
            sv->lq_len == 0 && sv__outcome_idle(sv)) {
            sv->exit_status = sv->one_shot_failed ? 1 : 0;
            begin_drain(sv, sv->one_shot_failed ? "one-shot run done, some jobs failed"
                                                : "one-shot run done");
            return;
        }
        sv__dispatch_maybe_claim(sv);
        break;
    case SV__PHASE_DRAINING:
        /* A claim still in flight brings jobs to hand back: wait for its answer. */
        if (sv->busy == 0 && !sv->claim_inflight && sv__outcome_idle(sv))
            begin_close(sv);
        break;
    default:
        break;
    }
}

static void on_wake(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    sv->wake_due = 0;
    sv->queue_has_more = true;
    sv__supervisor_progress(sv);
}

void sv__supervisor_wake_in(sv__supervisor *sv, int64_t delay_ms)
{
    if (sv->phase != SV__PHASE_RUNNING)
        return;
    /* Claims run in whole milliseconds of database time; 1 ms late is never early. */
    uint64_t due = uv_now(sv->loop) + (uint64_t)(delay_ms > 0 ? delay_ms : 0) + 1;
    if (sv->wake_due != 0 && sv->wake_due <= due)
        return;
    sv->wake_due = due;
    uv_timer_start(&sv->wake_timer, on_wake, due - uv_now(sv->loop), 0);
}

/* ---- Timers ---- */

static void on_poll_timer(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    sv->queue_has_more = true;
    sv__supervisor_progress(sv);
    sv__outcome_flush(sv);
}

static void on_heartbeat_done(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    sv->hb_sent_ms = 0;
    if (!result_ok(res, "heartbeat"))
        return;
    sv->hb_ok_ms = uv_now(sv->loop);
    if (sv->fenced) {
        sv->fenced = false;
        sv__log_info("heartbeats recorded again");
    }
    sv__supervisor_progress(sv);
}

/*
 * Without recorded heartbeats our leases run out and other supervisors rescue our jobs.
 * Before that can happen, stop: cancel the running handlers and give up their outcomes,
 * so that a job never runs here and elsewhere at once while both are alive.
 */
static void check_fence(sv__supervisor *sv)
{
    uint64_t now = uv_now(sv->loop);
    uint64_t silent = now - sv->hb_ok_ms;
    if (sv->hb_sent_ms != 0 && now - sv->hb_sent_ms > sv->opts.dead_after_ms / 3) {
        sv__buf why = {0};
        sv__buf_printf(&why, "a heartbeat went unanswered for %" PRIu64 " ms",
                       now - sv->hb_sent_ms);
        sv->hb_sent_ms = 0;
        sv__pg_reset(sv->pg, why.data);
        sv__buf_free(&why);
    }
    if (sv->fenced || silent <= sv->opts.dead_after_ms * 3 / 4)
        return;
    sv->fenced = true;
    uint32_t n = sv__dispatch_fence(sv);
    sv__log_error("no heartbeat recorded for %" PRIu64 " ms and leases last %" PRIu64
                  " ms: gave up %" PRIu32 " job(s) (running ones cancelled) so that they are "
                  "not run twice; the rescue or the reconnect puts them back in the queue",
                  silent, sv->opts.dead_after_ms, n);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    if (sv->worker_id == 0)
        return;
    check_fence(sv);
    if (!sv__pg_is_up(sv->pg) || sv->hb_sent_ms != 0)
        return;
    const sv__counters *c = &sv->counters;
    json_t *status = json_pack(
        "{s:s, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "phase",
        sv->phase == SV__PHASE_RUNNING ? "running" : "draining", "running_jobs",
        (json_int_t)sv->busy, "stuck_jobs", (json_int_t)sv->stuck, "counters", "claimed",
        (json_int_t)c->claimed, "succeeded", (json_int_t)c->succeeded, "retried",
        (json_int_t)c->retried, "dead", (json_int_t)c->dead, "timed_out", (json_int_t)c->timed_out,
        "handed_back", (json_int_t)c->handed_back, "rescued", (json_int_t)c->rescued);
    json_t *progress = json_array();
    sv__dispatch_progress(sv, progress);
    char *status_s = json_dumps(status, JSON_COMPACT);
    char *progress_s = json_dumps(progress, JSON_COMPACT);
    json_decref(status);
    json_decref(progress);
    char id[24], lease[24];
    snprintf(lease, sizeof lease, "%" PRIu64, sv->opts.dead_after_ms);
    const char *params[] = {id_text(sv->worker_id, id), lease, status_s, progress_s};
    if (sv__pg_send(sv->pg, true, "sv_heartbeat", 4, params, on_heartbeat_done, sv) == 0)
        sv->hb_sent_ms = uv_now(sv->loop);
    free(status_s);
    free(progress_s);
    sv__notify_watchdog();
}

static void on_rescued(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    if (!result_ok(res, "rescue"))
        return;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        sv__log_warning("rescued job %s (%s) from a supervisor that stopped heartbeating: now %s",
                        PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    }
    if (n > 0) {
        sv->counters.rescued += (uint64_t)n;
        sv->queue_has_more = true;
        sv__supervisor_progress(sv);
    }
}

static void run_rescue(sv__supervisor *sv)
{
    if (!sv__pg_is_up(sv->pg) || sv->worker_id == 0 || sv->reconcile_needed)
        return;
    char max_attempts[16], id[24];
    snprintf(max_attempts, sizeof max_attempts, "%u", SV__DEFAULT_MAX_ATTEMPTS);
    const char *params[] = {max_attempts, id_text(sv->worker_id, id)};
    sv__pg_send(sv->pg, true, "sv_rescue", 2, params, on_rescued, sv);
}

static void on_rescue_timer(uv_timer_t *t)
{
    run_rescue(t->data);
}

/* Ready jobs that no plugin here handles stay queued for another supervisor; say so. */
static void on_unhandled(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    if (!result_ok(res, "counting unhandled jobs"))
        return;
    sv__buf b = {0};
    for (int i = 0; i < PQntuples(res); i++)
        sv__buf_printf(&b, "%s%s (%s)", i ? ", " : "", PQgetvalue(res, i, 0),
                       PQgetvalue(res, i, 1));
    const char *now = b.data != NULL ? b.data : "";
    const char *before = sv->unhandled_report != NULL ? sv->unhandled_report : "";
    if (strcmp(now, before) != 0) {
        if (*now)
            sv__log_warning("ready jobs of types no plugin here handles stay queued: %s", now);
        else
            sv__log_info("no more ready jobs of unhandled types");
        free(sv->unhandled_report);
        sv->unhandled_report = sv__xstrdup(now);
    }
    sv__buf_free(&b);
}

static void on_unhandled_timer(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    if (!sv__pg_is_up(sv->pg) || sv->worker_id == 0)
        return;
    const char *params[] = {sv->types_param};
    sv__pg_send(sv->pg, true, "sv_unhandled", 1, params, on_unhandled, sv);
}

/* ---- Start-up: schema check, registration, predecessors ---- */

static void on_retired(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    if (result_ok(res, "retiring dead predecessors") && atoi(PQcmdTuples((PGresult *)res)) > 0)
        sv__log_info("expired the leases of %s jobs held by dead predecessors on this host",
                     PQcmdTuples((PGresult *)res));
    run_rescue(sv);
}

/* Supervisors on this host whose process is gone: their jobs are rescued at once. */
static void on_predecessors(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    if (!result_ok(res, "looking for predecessors"))
        return;
    sv__buf ids = {0};
    sv__buf_puts(&ids, "{");
    int dead = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        pid_t pid = (pid_t)atoi(PQgetvalue(res, i, 1));
        if (pid == getpid() || (kill(pid, 0) < 0 && errno == ESRCH)) {
            sv__buf_printf(&ids, "%s%s", dead ? "," : "", PQgetvalue(res, i, 0));
            dead++;
        }
    }
    sv__buf_puts(&ids, "}");
    if (dead > 0) {
        sv__log_info("found %d dead supervisor(s) on this host; rescuing their jobs now", dead);
        const char *params[] = {ids.data};
        sv__pg_send(sv->pg, true, "sv_retire", 1, params, on_retired, sv);
    }
    sv__buf_free(&ids);
}

static void on_registered(sv__pg *pg, const PGresult *res, void *data)
{
    sv__supervisor *sv = data;
    if (!result_ok(res, "registering this supervisor") || PQntuples(res) != 1)
        return; /* Registration is retried on the next connect. */
    sv->worker_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    sv->hb_ok_ms = uv_now(sv->loop);
    if (sv->opts.one_shot)
        sv->cutoff = sv__xstrdup(PQgetvalue(res, 0, 1));
    sv->phase = SV__PHASE_RUNNING;

    sv__buf types = {0};
    for (size_t i = 0; i < sv->ntypes; i++)
        sv__buf_printf(&types, "%s%s", i ? ", " : "", sv->types[i]->name);
    sv__log_info("ready: worker %" PRId64 " on %s (pid %d), %" PRIu32 " workers, job types: %s%s",
                 sv->worker_id, sv->hostname, (int)getpid(), sv->nslots,
                 types.data ? types.data : "(none)", sv->opts.one_shot ? "; one-shot" : "");
    sv__buf_free(&types);
    sv__notify_ready();

    uv_timer_start(&sv->poll_timer, on_poll_timer, sv->opts.poll_interval_ms,
                   sv->opts.poll_interval_ms);
    uv_timer_start(&sv->heartbeat_timer, on_heartbeat_timer, sv->opts.heartbeat_ms,
                   sv->opts.heartbeat_ms);
    uv_timer_start(&sv->rescue_timer, on_rescue_timer, sv->opts.rescue_interval_ms,
                   sv->opts.rescue_interval_ms);
    uv_timer_start(&sv->unhandled_timer, on_unhandled_timer, 0, UNHANDLED_REPORT_MS);

    char id[24];
    const char *params[] = {sv->hostname, id_text(sv->worker_id, id)};
    sv__pg_send(pg, true, "sv_predecessors", 2, params, on_predecessors, sv);
    run_rescue(sv);
    sv->queue_has_more = true;
    sv__supervisor_progress(sv);
}

static void setup_statements(sv__supervisor *sv);

static void check_schema_version(sv__supervisor *sv, int version)
{
    sv__pg *pg = sv->pg;
    int latest = sv__schema_version_latest();
    if (version != latest) {
        if (version < latest)
            sv__log_error("the database schema is at version %d but this binary needs %d: run "
                          "'supervisor-worker migrate' first",
                          version, latest);
        else
            sv__log_error("the database schema is at version %d, newer than this binary "
                          "knows (%d): upgrade supervisor-worker",
                          version, latest);
        sv->exit_status = 1;
        begin_close(sv);
        return;
    }
    /* Prepared only now: on a database without the schema they would only fail. */
    setup_statements(sv);
    char pid[16], workers[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(workers, sizeof workers, "%" PRIu32, sv->nslots);
    const char *params[] = {sv->hostname, pid, SV_VERSION, workers, sv->types_param};
    sv__pg_send(pg, true, "sv_register", 5, params, on_registered, sv);
}

static void on_schema_version(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    if (result_ok(res, "checking the schema version") && PQntuples(res) == 1)
        check_schema_version(data, atoi(PQgetvalue(res, 0, 0)));
}

static void on_schema_exists(sv__pg *pg, const PGresult *res, void *data)
{
    if (!result_ok(res, "checking the schema version") || PQntuples(res) != 1)
        return;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        check_schema_version(data, 0);
    else
        sv__pg_send(pg, false, SV__SCHEMA_VERSION_QUERY, 0, NULL, on_schema_version, data);
}

/* ---- Connection events ---- */

static void on_reconciled(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    if (!result_ok(res, "reconciling held jobs"))
        return; /* Tried again on the next connect. */
    sv->reconcile_needed = false;
    on_heartbeat_timer(&sv->heartbeat_timer); /* renew the leases now, not in a while */
    int n = PQntuples(res);
    if (n > 0)
        sv__log_warning("handed back %d job(s) held in the table but no longer in memory "
                        "(claims cut off by the lost connection, or jobs given up while "
                        "heartbeats failed)",
                        n);
    sv__outcome_flush(sv);
    sv->queue_has_more = true;
    sv__supervisor_progress(sv);
}

static void on_pg_up(sv__pg *pg, void *data)
{
    sv__supervisor *sv = data;
    if (sv->worker_id == 0) {
        sv__pg_send(pg, false, SV__SCHEMA_EXISTS_QUERY, 0, NULL, on_schema_exists, sv);
        return;
    }
    /*
     * A claim in flight when the connection broke may have committed: those jobs are ours
     * in the table but not in memory. Hand them back before anything else is written.
     */
    json_t *ids = json_array();
    sv__dispatch_held_ids(sv, ids);
    for (size_t i = 0; i < sv->pending.len; i++)
        json_array_append_new(ids, json_integer(sv->pending.items[i].id));
    for (size_t i = 0; i < sv->inflight.len; i++)
        json_array_append_new(ids, json_integer(sv->inflight.items[i].id));
    char *ids_s = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    char id[24];
    const char *params[] = {id_text(sv->worker_id, id), ids_s};
    sv->reconcile_needed = true;
    sv__pg_send(pg, true, "sv_reconcile", 2, params, on_reconciled, sv);
    free(ids_s);
}

static void on_pg_down(sv__pg *pg, const char *reason, void *data)
{
    (void)pg;
    (void)reason;
    sv__supervisor *sv = data;
    /* Handlers keep running; their outcomes wait in memory for the reconnect. */
    if (sv->busy > 0)
        sv__log_info("%" PRIu32 " job(s) keep running; their outcomes will be written after "
                     "the reconnect",
                     sv->busy);
}

static void on_pgw_up(sv__pg *pg, void *data)
{
    (void)pg;
    sv__outcome_flush(data);
}

static void on_pg_notify(sv__pg *pg, const char *channel, const char *payload, void *data)
{
    (void)pg;
    (void)channel;
    (void)payload;
    sv__supervisor *sv = data;
    sv->queue_has_more = true;
    sv__supervisor_progress(sv);
}

/* ---- Shutdown ---- */

static void fast_exit(int status)
{
    /* Pool threads may still run handlers: libuv's destructor would wait for them, so
     * leave without running atexit handlers or destructors. */
    fflush(stdout);
    fflush(stderr);
    _exit(status);
}

static void on_stopped_fast(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    result_ok(res, "marking this supervisor stopped");
    fast_exit(sv->exit_status);
}

static void on_stop_timeout(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    fast_exit(sv->exit_status);
}

static void on_exit_grace(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    if (sv->phase != SV__PHASE_DRAINING)
        return;
    if (!sv__outcome_idle(sv))
        sv__log_error("exiting with %zu outcome(s) not written (database unreachable); those "
                      "jobs will be rescued",
                      sv->pending.len + sv->inflight.len);
    if (sv->busy > 0) {
        sv__log_warning("exiting with %" PRIu32 " handler(s) still running that ignored "
                        "cancellation; their jobs were handed back",
                        sv->busy);
        /* Mark the workers row stopped first, if the database answers within the grace. */
        char id[24];
        const char *params[] = {id_text(sv->worker_id, id)};
        sv->phase = SV__PHASE_CLOSING;
        if (sv->worker_id != 0 &&
            sv__pg_send(sv->pg, true, "sv_stopped", 1, params, on_stopped_fast, sv) == 0) {
            uv_timer_start(&sv->shutdown_timer, on_stop_timeout, HANDBACK_EXIT_GRACE_MS, 0);
            return;
        }
        fast_exit(sv->exit_status);
    }
    begin_close(sv);
}

static void on_shutdown_timer(uv_timer_t *t)
{
    sv__supervisor *sv = t->data;
    if (sv->phase != SV__PHASE_DRAINING)
        return;
    sv__dispatch_hand_back_all(sv);
    /* Cooperative handlers return at once; the rest cannot be stopped, so do not wait for
     * them longer than it takes to write the hand-backs. */
    uv_timer_start(&sv->shutdown_timer, on_exit_grace, HANDBACK_EXIT_GRACE_MS, 0);
    sv__supervisor_progress(sv);
}

static void begin_drain(sv__supervisor *sv, const char *why)
{
    if (sv->phase != SV__PHASE_RUNNING && sv->phase != SV__PHASE_STARTING)
        return;
    if (sv->phase == SV__PHASE_STARTING) {
        sv__log_info("%s before start-up completed; exiting", why);
        begin_close(sv);
        return;
    }
    sv->phase = SV__PHASE_DRAINING;
    uv_timer_stop(&sv->poll_timer);
    uv_timer_stop(&sv->wake_timer);
    uv_timer_stop(&sv->unhandled_timer);
    sv__notify_stopping();
    sv__dispatch_release_local(sv);
    if (sv->busy > 0)
        sv__log_info("%s: no new claims; waiting up to %" PRIu64 " ms for %" PRIu32
                     " running job(s)",
                     why, sv->opts.shutdown_timeout_ms, sv->busy);
    else
        sv__log_info("%s: stopping", why);
    uv_timer_start(&sv->shutdown_timer, on_shutdown_timer, sv->opts.shutdown_timeout_ms, 0);
    sv__supervisor_progress(sv);
}

static void finish_close(sv__supervisor *sv)
{
    sv__pg_close(sv->pg);
    sv->pg = NULL;
    sv__pg_close(sv->pgw);
    sv->pgw = NULL;
    uv_handle_t *handles[] = {
        (uv_handle_t *)&sv->poll_timer,      (uv_handle_t *)&sv->wake_timer,
        (uv_handle_t *)&sv->heartbeat_timer, (uv_handle_t *)&sv->rescue_timer,
        (uv_handle_t *)&sv->unhandled_timer, (uv_handle_t *)&sv->shutdown_timer,
        (uv_handle_t *)&sv->sigterm,         (uv_handle_t *)&sv->sigint,
    };
    for (size_t i = 0; i < SV__ARRAY_SIZE(handles); i++)
        if (!uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    sv__dispatch_close(sv);
}

static void on_stopped(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    result_ok(res, "marking this supervisor stopped");
    finish_close(sv);
}

static void begin_close(sv__supervisor *sv)
{
    if (sv->phase == SV__PHASE_CLOSING)
        return;
    sv->phase = SV__PHASE_CLOSING;
    if (sv->busy > 0) {
        /* Only reachable for fatal errors while handlers run. */
        sv__log_error("exiting with %" PRIu32 " handler(s) running", sv->busy);
        fast_exit(sv->exit_status ? sv->exit_status : 1);
    }
    char id[24];
    const char *params[] = {id_text(sv->worker_id, id)};
    if (sv->worker_id == 0 ||
        sv__pg_send(sv->pg, true, "sv_stopped", 1, params, on_stopped, sv) < 0)
        finish_close(sv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    sv__supervisor *sv = h->data;
    if (++sv->signals_seen > 1 || sv->phase == SV__PHASE_CLOSING) {
        sv__log_warning("%s again: exiting at once; running jobs will be rescued",
                        strsignal(signum));
        fast_exit(1);
    }
    begin_drain(sv, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- Entry point ---- */

static void session_setup(sv__pg *pg, const char *app_name, bool synchronous_commit)
{
    /* Name the connection in pg_stat_activity, unless the DSN already did. */
    sv__buf sql = {0};
    sv__buf_printf(&sql,
                   "SELECT set_config('application_name', CASE current_setting('application_name')"
                   " WHEN '' THEN '%s' ELSE current_setting('application_name') END, false)",
                   app_name);
    sv__pg_add_setup(pg, sql.data);
    sv__buf_free(&sql);
    /*
     * Claims and outcomes need not wait for the WAL flush: if the server crashes before it,
     * a lost claim leaves the job queued (our outcome for it is then refused, and it runs
     * again) and a lost outcome leaves it running under our name, which the reconcile after
     * the reconnect hands back. At least once either way, without an fsync per batch.
     */
    if (!synchronous_commit)
        sv__pg_add_setup(pg, "SET synchronous_commit TO off");
    /*
     * One plan per statement, made once: a custom plan sized to a batch of 500 ids preferred
     * hashing every running row to probing the primary key 500 times, and got slower as the
     * running set grew (100,000 jobs took 50 s instead of 4). The generic plans probe the
     * primary key, and no batch pays for planning (about 1 ms each).
     */
    sv__pg_add_setup(pg, "SET plan_cache_mode TO force_generic_plan");
}

static void setup_statements(sv__supervisor *sv)
{
    static const struct {
        const char *name, *sql;
    } stmts[] = {
        {"sv_register", SV__SQL_REGISTER}, {"sv_claim", SV__SQL_CLAIM},
        {"sv_outcomes", SV__SQL_OUTCOMES}, {"sv_heartbeat", SV__SQL_HEARTBEAT},
        {"sv_rescue", SV__SQL_RESCUE},     {"sv_predecessors", SV__SQL_PREDECESSORS},
        {"sv_retire", SV__SQL_RETIRE},     {"sv_reconcile", SV__SQL_RECONCILE},
        {"sv_stopped", SV__SQL_STOPPED},   {"sv_unhandled", SV__SQL_UNHANDLED},
    };
    if (sv->statements_ready)
        return;
    sv->statements_ready = true;
    for (size_t i = 0; i < SV__ARRAY_SIZE(stmts); i++)
        sv__pg_add_prepared(sv->pg, stmts[i].name, stmts[i].sql);
    sv__pg_add_prepared(sv->pgw, "sv_outcomes", SV__SQL_OUTCOMES);
    sv__pg_add_prepared(sv->pgw, "sv_succeeded", SV__SQL_SUCCEEDED);
}

int sv__supervisor_run(uv_loop_t *loop, const sv__run_opts *opts, sv__plugin_host *plugins)
{
    sv__supervisor *sv = sv__xcalloc(1, sizeof *sv);
    sv->loop = loop;
    sv->opts = *opts;
    sv->phase = SV__PHASE_STARTING;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    if (gethostname(sv->hostname, sizeof sv->hostname - 1) < 0)
        strcpy(sv->hostname, "unknown");

    sv->ntypes = sv__plugin_host_type_count(plugins);
    sv->types = sv__xcalloc(sv->ntypes, sizeof *sv->types);
    sv->type_held = sv__xcalloc(sv->ntypes, sizeof *sv->type_held);
    for (size_t i = 0; i < sv->ntypes; i++)
        sv->types[i] = sv__plugin_host_type_at(plugins, i);
    /* The claim's parameters, built once: type names are safe in an array literal. */
    sv__buf types = {0}, max_attempts = {0};
    sv__buf_puts(&types, "{");
    sv__buf_puts(&max_attempts, "{");
    for (size_t i = 0; i < sv->ntypes; i++) {
        sv__buf_printf(&types, "%s%s", i ? "," : "", sv->types[i]->name);
        sv__buf_printf(&max_attempts, "%s%" PRIu32, i ? "," : "", sv->types[i]->max_attempts);
        if (sv->types[i]->concurrency > 0)
            sv->any_limited = true;
    }
    sv__buf_puts(&types, "}");
    sv__buf_puts(&max_attempts, "}");
    sv->types_param = types.data;
    sv->max_attempts_param = max_attempts.data;
    if (sv->ntypes == 0)
        sv__log_warning("no job types are registered (is the plugin directory right?); "
                        "no job will run");

    sv->nslots = opts->max_workers;
    sv__dispatch_init(sv);

    static const sv__pg_callbacks pgcb = {
        .up = on_pg_up,
        .down = on_pg_down,
        .notify = on_pg_notify,
    };
    static const sv__pg_callbacks pgwcb = {
        .up = on_pgw_up,
    };
    sv->pg = sv__pg_new(loop, opts->dsn, "queue", &pgcb, sv);
    sv->pgw = sv__pg_new(loop, opts->dsn, "outcomes", &pgwcb, sv);
    session_setup(sv->pg, "supervisor-worker queue", opts->synchronous_commit);
    session_setup(sv->pgw, "supervisor-worker outcomes", opts->synchronous_commit);
    sv__pg_add_listen(sv->pg, "sv_jobs");

    uv_timer_t *timers[] = {&sv->poll_timer,   &sv->wake_timer,     &sv->heartbeat_timer,
                            &sv->rescue_timer, &sv->shutdown_timer, &sv->unhandled_timer};
    for (size_t i = 0; i < SV__ARRAY_SIZE(timers); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = sv;
    }
    uv_signal_init(loop, &sv->sigterm);
    uv_signal_init(loop, &sv->sigint);
    sv->sigterm.data = sv->sigint.data = sv;
    uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&sv->sigint, on_signal, SIGINT);

    sv__pg_start(sv->pg);
    sv__pg_start(sv->pgw);
    uv_run(loop, UV_RUN_DEFAULT);

    int status = sv->exit_status;
    sv__log_info("stopped: %" PRIu64 " claimed, %" PRIu64 " succeeded, %" PRIu64
                 " retried, %" PRIu64 " dead, %" PRIu64 " timed out, %" PRIu64 " handed back",
                 sv->counters.claimed, sv->counters.succeeded, sv->counters.retried,
                 sv->counters.dead, sv->counters.timed_out, sv->counters.handed_back);
    for (uint32_t i = 0; i < sv->nslots; i++) {
        sv__job_reset(&sv->slots[i]);
        uv_mutex_destroy(&sv->slots[i].progress_lock);
    }
    sv__outcome_free_all(sv);
    free(sv->slots);
    free(sv->types);
    free(sv->type_held);
    free(sv->localq);
    free(sv->cutoff);
    free(sv->types_param);
    free(sv->max_attempts_param);
    free(sv->unhandled_report);
    free(sv);
    return status;
}
