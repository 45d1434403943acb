/*
 * The supervisor's state, shared by supervisor.c (life cycle, heartbeats, rescue, shutdown),
 * dispatch.c (claims, running handlers, timeouts) and outcome.c (batched outcome writes).
 * Loop thread only.
 */
#ifndef SV_CORE_SUPERVISOR_INT_H
#define SV_CORE_SUPERVISOR_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "job.h"
#include "pgconn.h"
#include "plugin_host.h"
#include "supervisor.h"
#include "util.h"

typedef enum sv__phase {
    SV__PHASE_STARTING, /* connecting, registering */
    SV__PHASE_RUNNING,  /* claiming and running */
    SV__PHASE_DRAINING, /* signal received (or one-shot done): no claims, jobs finishing */
    SV__PHASE_CLOSING,  /* closing handles */
} sv__phase;

/* One attempt's fate, waiting to be written. */
typedef enum sv__outcome_kind {
    SV__OUTCOME_SUCCEEDED,
    SV__OUTCOME_RETRY,    /* back to queued after delay_ms, error recorded */
    SV__OUTCOME_DEAD,     /* no more attempts, error recorded */
    SV__OUTCOME_HANDBACK, /* shutdown: back to queued at once, the attempt not spent */
} sv__outcome_kind;

typedef struct sv__outcome {
    int64_t id;
    uint32_t attempt;
    bool resent; /* its first write was cut off: it may have been recorded already */
    sv__outcome_kind kind;
    int64_t delay_ms;
    char *error;       /* owned; NULL for success and hand-back */
    json_t *result;    /* owned reference or NULL */
    json_t *followups; /* owned reference or NULL */
    json_t *progress;  /* owned reference or NULL: the last report not yet written */
} sv__outcome;

typedef struct sv__outcome_list {
    sv__outcome *items;
    size_t len, cap;
} sv__outcome_list;

/* A claimed job waiting in the local queue for a free slot. */
typedef struct sv__claimed {
    int64_t id;
    const sv__jobtype *type;
    uint32_t type_index;
    uint32_t attempt;
    uint32_t max_attempts;
    uint32_t timeout_ms;
    char *queue;
    json_t *payload; /* NULL when it could not be decoded (error set) */
    char *decode_error;
} sv__claimed;

typedef struct sv__counters {
    uint64_t claimed, succeeded, retried, dead, timed_out, handed_back, rescued;
} sv__counters;

typedef struct sv__supervisor {
    uv_loop_t *loop;
    sv__run_opts opts;
    sv__phase phase;
    int exit_status;

    sv__pg *pg;        /* claims, LISTEN, heartbeats, rescue */
    sv__pg *pgw;       /* outcome writes, so that claims never wait behind them */
    int64_t worker_id; /* sv_workers.id; 0 until registered */
    char *cutoff;      /* one-shot: the database time at start; claims take run_at <= it */
    char hostname[256];
    uint64_t hb_ok_ms;     /* uv_now() of the last recorded heartbeat (or registration) */
    uint64_t hb_sent_ms;   /* uv_now() when the heartbeat in flight was sent; 0: none */
    bool fenced;           /* heartbeats failed so long that our leases may have expired */
    bool statements_ready; /* prepared once the schema version is known to be right */

    /* Claim parameters, built once from the registry. */
    size_t ntypes;
    const sv__jobtype **types;
    uint32_t *type_held; /* per type index: jobs running or waiting in the local queue */
    bool any_limited;    /* some type has a concurrency limit: claims build their own params */

    /* Job slots: one per worker; a slot stays busy while its handler runs. */
    sv_job *slots;
    uint32_t nslots;
    uint32_t busy;  /* slots whose handler has not returned */
    uint32_t stuck; /* of those, handlers that ignored cancellation too long */
    /*
     * The local queue: jobs claimed ahead of free slots, so that a fast stream of jobs is
     * claimed in large batches. Its target size follows the completion rate (about
     * PREFETCH_HORIZON_MS of work), so slow jobs are never hoarded.
     */
    sv__claimed *localq;
    size_t lq_head, lq_len, lq_cap;
    uint32_t prefetch_target;
    uint64_t rate_window_start;
    uint64_t rate_window_done;
    double rate;         /* completions per second, smoothed */
    bool claim_inflight; /* one claim at a time */
    bool queue_has_more; /* a notify, a poll or a full claim says there may be more */
    bool one_shot_drained;
    bool one_shot_failed;

    /* Outcomes: pending ones wait for the write in flight to finish, then go as one batch. */
    sv__outcome_list pending;
    sv__outcome_list inflight;
    size_t solo_remaining; /* after a refused batch: outcomes still to send one by one */
    struct {
        unsigned pending; /* statements of the batch in flight not answered yet (0-2) */
        bool lost;        /* one of them was cut off with the connection */
        char *refused;    /* why the database refused one of them, or NULL */
        long written;     /* rows updated so far */
    } write;
    bool reconcile_needed; /* reconnected: hand back claims whose answer was lost */

    sv__counters counters;

    uv_timer_t poll_timer;
    uv_timer_t wake_timer; /* earliest known retry of our own jobs */
    uint64_t wake_due;     /* uv_now() at which wake_timer fires; 0 when idle */
    uv_timer_t heartbeat_timer;
    uv_timer_t rescue_timer;
    uv_timer_t unhandled_timer; /* reports ready jobs of types no plugin here handles */
    char *types_param;          /* "{a,b}": the job types this process handles */
    char *max_attempts_param;   /* "{25,3}": their default max attempts, in the same order */
    char *unhandled_report;     /* the last report, to log only changes */
    uv_timer_t shutdown_timer;
    uv_signal_t sigterm, sigint;
    int signals_seen;
} sv__supervisor;

/* dispatch.c */
void sv__dispatch_init(sv__supervisor *sv);
void sv__dispatch_maybe_claim(sv__supervisor *sv);
/* Shutdown's grace period ran out: cancel the running handlers and hand their jobs back. */
void sv__dispatch_hand_back_all(sv__supervisor *sv);
/* Adds the ids of every job this process still holds to a JSON array (reconcile). */
void sv__dispatch_held_ids(sv__supervisor *sv, json_t *ids);
void sv__dispatch_progress(sv__supervisor *sv, json_t *out);
void sv__dispatch_close(sv__supervisor *sv);
/* Shutdown: jobs still waiting in the local queue go back at once. */
void sv__dispatch_release_local(sv__supervisor *sv);
/*
 * Our leases may have expired: cancel the running handlers and forget them and the local
 * queue without recording outcomes (the rescue or the reconcile after the reconnect
 * decides their fate). Returns how many jobs were given up.
 */
uint32_t sv__dispatch_fence(sv__supervisor *sv);

/* outcome.c */
void sv__outcome_add(sv__supervisor *sv, sv__outcome *o); /* takes over o's members */
void sv__outcome_flush(sv__supervisor *sv);
bool sv__outcome_idle(const sv__supervisor *sv);
void sv__outcome_free_all(sv__supervisor *sv);
/* The retry delay for a failed attempt of type t: exponential with jitter and a cap. */
int64_t sv__backoff_ms(const sv__jobtype *t, uint32_t attempt);

/* supervisor.c */
/* Called whenever a job finishes, an outcome write completes or a claim returns. */
void sv__supervisor_progress(sv__supervisor *sv);
/* Asks for a claim no later than delay_ms from now (retries of our own jobs). */
void sv__supervisor_wake_in(sv__supervisor *sv, int64_t delay_ms);

#endif
