/* Claiming ready jobs and running them on the threadpool, with timeouts. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "supervisor_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The outcome list may grow this far beyond the worker count before claims pause. */
#define MAX_PENDING_OUTCOMES 10000

/* The local queue aims to hold about this much work, judged by the completion rate. */
#define PREFETCH_HORIZON_MS 50
/* The completion rate is measured over windows of this length, or of this many jobs. */
#define RATE_WINDOW_MS 100
#define RATE_BURST_JOBS 64
#define RATE_BURST_MIN_MS 5

static int type_by_name(const sv__supervisor *sv, const char *name)
{
    for (size_t i = 0; i < sv->ntypes; i++)
        if (strcmp(sv->types[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* Counts a completion and, once per window, updates the rate and the prefetch target. */
static void note_completion(sv__supervisor *sv)
{
    uint64_t now = uv_now(sv->loop);
    sv->rate_window_done++;
    uint64_t elapsed = now - sv->rate_window_start;
    /* A burst of short jobs updates the rate sooner, so the prefetch ramps up quickly. */
    bool burst = sv->rate_window_done >= RATE_BURST_JOBS && elapsed >= RATE_BURST_MIN_MS;
    if (elapsed < RATE_WINDOW_MS && !burst)
        return;
    double rate = (double)sv->rate_window_done * 1000.0 / (double)elapsed;
    sv->rate = sv->rate > 0 ? (sv->rate + rate) / 2 : rate;
    sv->rate_window_start = now;
    sv->rate_window_done = 0;
    double target = sv->rate * PREFETCH_HORIZON_MS / 1000.0;
    sv->prefetch_target = target > sv->opts.prefetch_max ? sv->opts.prefetch_max : (uint32_t)target;
}

static void log_job(int level, const sv_job *job, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_job(int level, const sv_job *job, const char *fmt, ...)
{
    sv__log_context ctx = {.job_id = job->id, .job_type = job->type->name};
    va_list ap;
    va_start(ap, fmt);
    sv__log_ctxv(level, &ctx, fmt, ap);
    va_end(ap);
}

/* ---- Running a handler ---- */

static void work_cb(uv_work_t *req)
{
    sv_job *job = container_of(req, sv_job, work);
    job->status = job->type->handler(job, job->type->userdata);
}

/* Turns a failed attempt into a retry or, when no attempts remain, a dead outcome. */
static void fail_attempt(sv__supervisor *sv, sv_job *job, bool permanent, int64_t delay_ms,
                         char *error)
{
    sv__outcome o = {.id = job->id, .attempt = job->attempt, .error = error};
    if (!permanent && job->attempt < job->max_attempts) {
        o.kind = SV__OUTCOME_RETRY;
        o.delay_ms = delay_ms >= 0 ? delay_ms : sv__backoff_ms(job->type, job->attempt);
        sv->counters.retried++;
        log_job(SV_LOG_INFO, job,
                "attempt %" PRIu32 " of %" PRIu32 " failed, retrying in %" PRId64 " ms: %s",
                job->attempt, job->max_attempts, o.delay_ms, error);
        sv__supervisor_wake_in(sv, o.delay_ms);
    } else {
        o.kind = SV__OUTCOME_DEAD;
        sv->counters.dead++;
        if (permanent)
            log_job(SV_LOG_WARNING, job, "failed permanently on attempt %" PRIu32 ": %s",
                    job->attempt, error);
        else
            log_job(SV_LOG_WARNING, job, "dead after %" PRIu32 " attempts: %s", job->attempt,
                    error);
    }
    if (sv->opts.one_shot)
        sv->one_shot_failed = true;
    sv__outcome_add(sv, &o);
}

static char *take_message(sv_job *job, const char *fallback)
{
    char *msg = job->message;
    job->message = NULL;
    return msg != NULL ? msg : sv__xstrdup(fallback);
}

/* The handler's latest progress report when the database has not seen it yet, or NULL. */
static json_t *take_progress(sv_job *job)
{
    json_t *p = NULL;
    uv_mutex_lock(&job->progress_lock);
    if (job->progress_dirty) {
        p = json_pack("{s:f}", "fraction", job->progress);
        if (p != NULL && job->progress_message != NULL)
            json_object_set_new(p, "message", json_string(job->progress_message));
        job->progress_dirty = false;
    }
    uv_mutex_unlock(&job->progress_lock);
    return p;
}

static void record_outcome(sv__supervisor *sv, sv_job *job)
{
    switch (job->status) {
    case SV_OK: {
        sv__outcome o = {
            .id = job->id,
            .attempt = job->attempt,
            .kind = SV__OUTCOME_SUCCEEDED,
            .result = job->result,
            .followups = job->followups,
            .progress = take_progress(job), /* the final report, with the success */
        };
        job->result = NULL;
        job->followups = NULL;
        sv->counters.succeeded++;
        if (sv__log_enabled(SV_LOG_DEBUG))
            log_job(SV_LOG_DEBUG, job, "succeeded on attempt %" PRIu32, job->attempt);
        sv__outcome_add(sv, &o);
        break;
    }
    case SV_RETRY:
        fail_attempt(sv, job, false, job->retry_delay_ms,
                     take_message(job, "the handler asked for a retry"));
        break;
    case SV_FAIL:
        fail_attempt(sv, job, true, -1,
                     take_message(job, "the handler reported a permanent failure"));
        break;
    default: {
        sv__buf b = {0};
        sv__buf_printf(&b, "the handler returned an invalid status (%d)", (int)job->status);
        fail_attempt(sv, job, false, -1, b.data);
        break;
    }
    }
}

static void after_work_cb(uv_work_t *req, int status)
{
    sv_job *job = container_of(req, sv_job, work);
    sv__supervisor *sv = job->sup;
    (void)status; /* Never cancelled: uv_cancel is not used on running work. */
    uv_timer_stop(&job->timer);
    sv->busy--;
    sv->type_held[job->type_index]--;
    note_completion(sv);
    if (job->stuck_reported) {
        sv->stuck--;
        log_job(SV_LOG_WARNING, job, "stuck handler returned after %" PRIu64 " ms",
                uv_now(sv->loop) - job->started_ms);
    }
    if (job->phase == SV__JOB_RUNNING)
        record_outcome(sv, job);
    else
        log_job(SV_LOG_DEBUG, job, "handler returned after its attempt had ended");
    sv__job_reset(job);
    sv__supervisor_progress(sv);
}

static void on_job_timer(uv_timer_t *timer)
{
    sv_job *job = timer->data;
    sv__supervisor *sv = job->sup;
    if (job->phase == SV__JOB_RUNNING) {
        /* The deadline: ask the handler to stop and decide the attempt's fate now. */
        atomic_store(&job->cancelled, true);
        job->phase = SV__JOB_ABANDONED;
        sv->counters.timed_out++;
        sv__buf b = {0};
        sv__buf_printf(&b, "timed out after %" PRIu32 " ms", job->timeout_ms);
        fail_attempt(sv, job, false, -1, b.data);
        uv_timer_start(&job->timer, on_job_timer, sv->opts.stuck_after_ms, 0);
    } else if (job->phase == SV__JOB_ABANDONED && !job->stuck_reported) {
        job->stuck_reported = true;
        sv->stuck++;
        log_job(SV_LOG_WARNING, job,
                "stuck: the handler has ignored cancellation for %" PRIu64
                " ms and keeps its worker slot (%" PRIu32 " stuck now)",
                sv->opts.stuck_after_ms, sv->stuck);
    }
}

static sv_job *free_slot(sv__supervisor *sv)
{
    for (uint32_t i = 0; i < sv->nslots; i++)
        if (sv->slots[i].phase == SV__JOB_FREE)
            return &sv->slots[i];
    return NULL;
}

static void claimed_clear(sv__claimed *c)
{
    free(c->queue);
    json_decref(c->payload);
    free(c->decode_error);
    memset(c, 0, sizeof *c);
}

/* Starts a job from the local queue in a free slot; takes over c's members. */
static void start_job(sv__supervisor *sv, sv_job *job, sv__claimed *c)
{
    job->id = c->id;
    job->type = c->type;
    job->type_index = c->type_index;
    job->queue = c->queue;
    job->payload = c->payload;
    job->attempt = c->attempt;
    job->max_attempts = c->max_attempts;
    job->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : c->type->timeout_ms;
    job->retry_delay_ms = -1;
    job->phase = SV__JOB_RUNNING;
    job->started_ms = uv_now(sv->loop);
    c->queue = NULL;
    c->payload = NULL;
    sv->busy++;
    if (job->payload == NULL) {
        /* jsonb holds numbers jansson cannot (beyond 64 bits): no attempt can succeed. */
        job->status = SV_FAIL;
        sv__buf b = {0};
        sv__buf_printf(&b, "the payload cannot be decoded: %s", c->decode_error);
        job->message = b.data;
        sv->busy--;
        sv->type_held[job->type_index]--;
        record_outcome(sv, job);
        sv__job_reset(job);
        claimed_clear(c);
        return;
    }
    claimed_clear(c);
    uv_timer_start(&job->timer, on_job_timer, job->timeout_ms, 0);
    int r = uv_queue_work(sv->loop, &job->work, work_cb, after_work_cb);
    if (r < 0) {
        sv__log_error("cannot queue job %" PRId64 ": %s", job->id, uv_strerror(r));
        abort(); /* uv_queue_work fails only on programming errors. */
    }
}

/* Moves jobs from the local queue into free slots. */
static void run_local_queue(sv__supervisor *sv)
{
    /* Start waiting jobs only while their leases are surely valid (recent heartbeat). */
    if (uv_now(sv->loop) - sv->hb_ok_ms > sv->opts.dead_after_ms / 2)
        return;
    while (sv->lq_len > 0 && sv->phase == SV__PHASE_RUNNING) {
        sv_job *job = free_slot(sv);
        if (job == NULL)
            break;
        sv__claimed *c = &sv->localq[sv->lq_head];
        sv->lq_head = (sv->lq_head + 1) % sv->lq_cap;
        sv->lq_len--;
        start_job(sv, job, c);
    }
}

static void local_push(sv__supervisor *sv, const sv__claimed *c)
{
    if (sv->lq_len == sv->lq_cap) {
        size_t cap = sv->lq_cap ? sv->lq_cap * 2 : 64;
        sv__claimed *q = sv__xcalloc(cap, sizeof *q);
        for (size_t i = 0; i < sv->lq_len; i++)
            q[i] = sv->localq[(sv->lq_head + i) % sv->lq_cap];
        free(sv->localq);
        sv->localq = q;
        sv->lq_cap = cap;
        sv->lq_head = 0;
    }
    sv->localq[(sv->lq_head + sv->lq_len) % sv->lq_cap] = *c;
    sv->lq_len++;
}

/* Queues one claimed row: id, type, queue, payload, attempts, max_attempts, timeout_ms. */
static void queue_row(sv__supervisor *sv, const PGresult *res, int row)
{
    sv__claimed c = {0};
    c.id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    c.attempt = (uint32_t)strtoul(PQgetvalue(res, row, 4), NULL, 10);
    int ti = type_by_name(sv, PQgetvalue(res, row, 1));
    if (ti < 0) {
        /* Cannot happen: we claim only our own types. */
        sv__log_error("claimed job %" PRId64 " of unknown type %s; handing it back", c.id,
                      PQgetvalue(res, row, 1));
        sv__outcome o = {.id = c.id, .attempt = c.attempt, .kind = SV__OUTCOME_HANDBACK};
        sv__outcome_add(sv, &o);
        return;
    }
    c.type_index = (uint32_t)ti;
    c.type = sv->types[ti];
    c.queue = sv__xstrdup(PQgetvalue(res, row, 2));
    c.max_attempts = (uint32_t)strtoul(PQgetvalue(res, row, 5), NULL, 10);
    c.timeout_ms = (uint32_t)strtoul(PQgetvalue(res, row, 6), NULL, 10);
    json_error_t err;
    c.payload = json_loadb(PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3),
                           JSON_DECODE_ANY, &err);
    if (c.payload == NULL)
        c.decode_error = sv__xstrdup(err.text);
    sv->type_held[ti]++;
    sv->counters.claimed++;
    local_push(sv, &c);
}

/* ---- Claiming ---- */

typedef struct claim_req {
    sv__supervisor *sv;
    uint32_t limit;
    bool complete; /* every type with queued work could be claimed */
} claim_req;

static void on_claimed(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    claim_req *req = data;
    sv__supervisor *sv = req->sv;
    sv->claim_inflight = false;
    if (res == NULL) {
        /* Lost with the connection; if it committed, the reconcile hands the jobs back. */
        free(req);
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(res);
        sv__log_error("claim failed: %.*s", (int)strcspn(msg, "\n"), msg);
        free(req);
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        queue_row(sv, res, i);
    if ((uint32_t)n >= req->limit)
        sv->queue_has_more = true;
    else if (sv->opts.one_shot && req->complete)
        sv->one_shot_drained = true;
    free(req);
    if (sv->phase == SV__PHASE_RUNNING)
        run_local_queue(sv);
    else
        sv__dispatch_release_local(sv); /* shutdown began while the claim was in flight */
    sv__supervisor_progress(sv);
}

/*
 * With per-type concurrency limits, the claim's types and batch size depend on what runs:
 * types at their limit sit the claim out, and a type with room for fewer jobs than the
 * batch shrinks it. Returns false when no type can take a job now.
 */
static bool limited_claim_params(sv__supervisor *sv, uint32_t *limit, bool *complete,
                                 sv__buf *types, sv__buf *max_attempts)
{
    sv__buf_puts(types, "{");
    sv__buf_puts(max_attempts, "{");
    size_t included = 0;
    for (size_t i = 0; i < sv->ntypes; i++) {
        const sv__jobtype *t = sv->types[i];
        if (t->concurrency > 0) {
            uint32_t room =
                t->concurrency > sv->type_held[i] ? t->concurrency - sv->type_held[i] : 0;
            if (room == 0) {
                *complete = false;
                continue;
            }
            if (room < *limit)
                *limit = room;
        }
        /* Type names are [A-Za-z0-9_.:-]: safe in an array literal without quoting. */
        sv__buf_printf(types, "%s%s", included ? "," : "", t->name);
        sv__buf_printf(max_attempts, "%s%" PRIu32, included ? "," : "", t->max_attempts);
        included++;
    }
    sv__buf_puts(types, "}");
    sv__buf_puts(max_attempts, "}");
    if (included == 0) {
        sv__buf_free(types);
        sv__buf_free(max_attempts);
        return false;
    }
    return true;
}

void sv__dispatch_maybe_claim(sv__supervisor *sv)
{
    run_local_queue(sv);
    if (sv->phase != SV__PHASE_RUNNING || sv->claim_inflight || !sv->queue_has_more ||
        sv->reconcile_needed || !sv__pg_is_up(sv->pg))
        return;
    if (sv->ntypes == 0 || sv->pending.len + sv->inflight.len > MAX_PENDING_OUTCOMES)
        return;
    /* Claim only while heartbeats are recorded: claimed jobs must not outlive their lease. */
    if (uv_now(sv->loop) - sv->hb_ok_ms > sv->opts.dead_after_ms / 2)
        return;
    /*
     * Claim for the free slots plus the prefetch target, refilling once the local queue is
     * down to half the target, so fast jobs are claimed in large batches before they run
     * out. Slow jobs keep the target at zero: claims then cover the free slots only.
     */
    uint32_t nfree = sv->nslots - sv->busy;
    uint32_t want = nfree + sv->prefetch_target;
    if (sv->lq_len >= want || (sv->lq_len > 0 && sv->lq_len * 2 > sv->prefetch_target))
        return;
    nfree = want - (uint32_t)sv->lq_len;
    if (nfree == 0)
        return;
    uint32_t limit = nfree;
    bool complete = true;
    sv__buf types = {0}, max_attempts = {0};
    if (sv->any_limited && !limited_claim_params(sv, &limit, &complete, &types, &max_attempts))
        return;
    char owner[24], limit_s[16], lease[24];
    snprintf(owner, sizeof owner, "%" PRId64, sv->worker_id);
    snprintf(limit_s, sizeof limit_s, "%" PRIu32, limit);
    snprintf(lease, sizeof lease, "%" PRIu64, sv->opts.dead_after_ms);
    const char *params[] = {
        owner,
        sv->any_limited ? types.data : sv->types_param,
        limit_s,
        lease,
        sv->any_limited ? max_attempts.data : sv->max_attempts_param,
        sv->cutoff,
    };
    claim_req *req = sv__xcalloc(1, sizeof *req);
    req->sv = sv;
    req->limit = limit;
    req->complete = complete;
    if (sv__pg_send(sv->pg, true, "sv_claim", 6, params, on_claimed, req) == 0) {
        sv->claim_inflight = true;
        sv->queue_has_more = false;
    } else {
        free(req);
    }
    sv__buf_free(&types);
    sv__buf_free(&max_attempts);
}

void sv__dispatch_init(sv__supervisor *sv)
{
    sv->rate_window_start = uv_now(sv->loop);
    sv->slots = sv__xcalloc(sv->nslots, sizeof *sv->slots);
    for (uint32_t i = 0; i < sv->nslots; i++) {
        sv__job_slot_init(&sv->slots[i], sv->loop);
        sv->slots[i].sup = sv;
        sv->slots[i].timer.data = &sv->slots[i];
        sv->slots[i].phase = SV__JOB_FREE;
    }
}

void sv__dispatch_hand_back_all(sv__supervisor *sv)
{
    for (uint32_t i = 0; i < sv->nslots; i++) {
        sv_job *job = &sv->slots[i];
        if (job->phase != SV__JOB_RUNNING)
            continue;
        atomic_store(&job->cancelled, true);
        job->phase = SV__JOB_ABANDONED;
        sv->counters.handed_back++;
        log_job(SV_LOG_WARNING, job,
                "still running at the end of the grace period; cancelled "
                "and handed back without spending the attempt");
        sv__outcome o = {.id = job->id, .attempt = job->attempt, .kind = SV__OUTCOME_HANDBACK};
        sv__outcome_add(sv, &o);
        uv_timer_start(&job->timer, on_job_timer, sv->opts.stuck_after_ms, 0);
    }
}

void sv__dispatch_held_ids(sv__supervisor *sv, json_t *ids)
{
    /*
     * Running handlers and the local queue. An abandoned slot's outcome was decided already:
     * it is in the outcome lists (the caller adds those), or written, or, after fencing,
     * deliberately forgotten so that the reconcile hands the job back.
     */
    for (uint32_t i = 0; i < sv->nslots; i++)
        if (sv->slots[i].phase == SV__JOB_RUNNING)
            json_array_append_new(ids, json_integer(sv->slots[i].id));
    for (size_t i = 0; i < sv->lq_len; i++)
        json_array_append_new(ids, json_integer(sv->localq[(sv->lq_head + i) % sv->lq_cap].id));
}

uint32_t sv__dispatch_fence(sv__supervisor *sv)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sv->nslots; i++) {
        sv_job *job = &sv->slots[i];
        if (job->phase != SV__JOB_RUNNING)
            continue;
        atomic_store(&job->cancelled, true);
        job->phase = SV__JOB_ABANDONED;
        uv_timer_start(&job->timer, on_job_timer, sv->opts.stuck_after_ms, 0);
        n++;
    }
    while (sv->lq_len > 0) {
        sv__claimed *c = &sv->localq[sv->lq_head];
        sv->lq_head = (sv->lq_head + 1) % sv->lq_cap;
        sv->lq_len--;
        sv->type_held[c->type_index]--;
        claimed_clear(c);
        n++;
    }
    return n;
}

void sv__dispatch_release_local(sv__supervisor *sv)
{
    if (sv->lq_len > 0)
        sv__log_info("handing back %zu claimed job(s) that had not started", sv->lq_len);
    while (sv->lq_len > 0) {
        sv__claimed *c = &sv->localq[sv->lq_head];
        sv->lq_head = (sv->lq_head + 1) % sv->lq_cap;
        sv->lq_len--;
        sv->type_held[c->type_index]--;
        sv__outcome o = {.id = c->id, .attempt = c->attempt, .kind = SV__OUTCOME_HANDBACK};
        sv__outcome_add(sv, &o);
        claimed_clear(c);
    }
}

void sv__dispatch_progress(sv__supervisor *sv, json_t *out)
{
    for (uint32_t i = 0; i < sv->nslots; i++) {
        sv_job *job = &sv->slots[i];
        if (job->phase != SV__JOB_RUNNING)
            continue;
        json_t *p = take_progress(job);
        if (p != NULL)
            json_array_append_new(
                out, json_pack("{s:I, s:o}", "id", (json_int_t)job->id, "progress", p));
    }
}

void sv__dispatch_close(sv__supervisor *sv)
{
    for (uint32_t i = 0; i < sv->nslots; i++)
        if (!uv_is_closing((uv_handle_t *)&sv->slots[i].timer))
            uv_close((uv_handle_t *)&sv->slots[i].timer, NULL);
}
