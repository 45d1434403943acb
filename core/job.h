/*
 * The job handle handed to handlers (struct sv_job, opaque to plugins), and the host-table
 * entries that act on it.
 *
 * Threads: the loop thread fills a handle, then hands it to a pool thread through
 * uv_queue_work; while the handler runs only the handler's thread touches the "handler"
 * members. The loop thread reads them again in the after-work callback, which libuv orders
 * after the work callback. `cancelled` is the only member both threads use at once (atomic),
 * and the progress members are guarded by their own mutex.
 */
#ifndef SV_CORE_JOB_H
#define SV_CORE_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <supervisor/sdk.h>

#include "plugin_host.h"

struct sv__supervisor;

typedef enum sv__job_phase {
    SV__JOB_FREE,      /* slot unused */
    SV__JOB_RUNNING,   /* handler running, outcome will be recorded when it returns */
    SV__JOB_ABANDONED, /* timed out or handed back: outcome already decided, slot still busy */
} sv__job_phase;

struct sv_job {
    /* Set by the loop before the handler runs; read-only while it runs. */
    int64_t id;
    uint32_t attempt;
    uint32_t max_attempts;
    uint32_t timeout_ms;
    char *queue;
    json_t *payload;
    const sv__jobtype *type;
    uint32_t type_index; /* the type's index in the supervisor's list (loop side) */

    atomic_bool cancelled;

    /* Written by the handler's thread; read by the loop after the handler returned. */
    sv_status status;
    char *message;
    int64_t retry_delay_ms;
    json_t *result;
    json_t *followups; /* array of enqueue requests, inserted with the success outcome */

    /* Progress, written by the handler at any time, read by the loop on heartbeats. */
    uv_mutex_t progress_lock;
    double progress;
    char *progress_message;
    bool progress_dirty;

    /* Loop-thread bookkeeping. */
    struct sv__supervisor *sup;
    sv__job_phase phase;
    bool stuck_reported;
    uint64_t started_ms; /* uv_now() when dispatched */
    uv_work_t work;
    uv_timer_t timer;
};

/* Prepares a slot once (its mutex and timer); sv__job_slot_close before the loop closes. */
int sv__job_slot_init(sv_job *job, uv_loop_t *loop);

/* Drops everything the previous attempt left in the slot; loop thread. */
void sv__job_reset(sv_job *job);

/* Host-table entries. */
int64_t sv__job_id(const sv_job *job);
const char *sv__job_type(const sv_job *job);
const char *sv__job_queue(const sv_job *job);
uint32_t sv__job_attempt(const sv_job *job);
uint32_t sv__job_max_attempts(const sv_job *job);
json_t *sv__job_payload(const sv_job *job);
void sv__job_logv(sv_job *job, int level, const char *fmt, va_list ap);
bool sv__job_cancelled(const sv_job *job);
void sv__job_set_progress(sv_job *job, double fraction, const char *message);
void sv__job_set_result(sv_job *job, json_t *result);
sv_status sv__job_finishv(sv_job *job, sv_status status, int64_t retry_delay_ms, const char *fmt,
                          va_list ap);
int sv__job_enqueue(sv_job *job, const char *type, json_t *payload, const sv_enqueue_opts *opts);

/* True when name is a valid job type name: 1-128 chars of [A-Za-z0-9_.:-]. */
bool sv__job_type_name_valid(const char *name);

#endif
