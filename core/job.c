#include "job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

int sv__job_slot_init(sv_job *job, uv_loop_t *loop)
{
    memset(job, 0, sizeof *job);
    int r = uv_mutex_init(&job->progress_lock);
    if (r < 0)
        return r;
    r = uv_timer_init(loop, &job->timer);
    if (r < 0) {
        uv_mutex_destroy(&job->progress_lock);
        return r;
    }
    job->timer.data = job;
    atomic_init(&job->cancelled, false);
    return 0;
}

void sv__job_reset(sv_job *job)
{
    free(job->queue);
    job->queue = NULL;
    json_decref(job->payload);
    job->payload = NULL;
    free(job->message);
    job->message = NULL;
    json_decref(job->result);
    job->result = NULL;
    json_decref(job->followups);
    job->followups = NULL;
    uv_mutex_lock(&job->progress_lock);
    free(job->progress_message);
    job->progress_message = NULL;
    job->progress = 0;
    job->progress_dirty = false;
    uv_mutex_unlock(&job->progress_lock);
    job->id = 0;
    job->attempt = 0;
    job->max_attempts = 0;
    job->timeout_ms = 0;
    job->type = NULL;
    job->status = SV_OK;
    job->retry_delay_ms = -1;
    job->phase = SV__JOB_FREE;
    job->stuck_reported = false;
    atomic_store(&job->cancelled, false);
}

bool sv__job_type_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok || n >= 128)
            return false;
    }
    return true;
}

int64_t sv__job_id(const sv_job *job)
{
    return job->id;
}

const char *sv__job_type(const sv_job *job)
{
    return job->type->name;
}

const char *sv__job_queue(const sv_job *job)
{
    return job->queue;
}

uint32_t sv__job_attempt(const sv_job *job)
{
    return job->attempt;
}

uint32_t sv__job_max_attempts(const sv_job *job)
{
    return job->max_attempts;
}

json_t *sv__job_payload(const sv_job *job)
{
    return job->payload;
}

void sv__job_logv(sv_job *job, int level, const char *fmt, va_list ap)
{
    sv__log_context ctx = {
        .plugin = sv__plugin_name(job->type->plugin),
        .job_id = job->id,
        .job_type = job->type->name,
    };
    sv__log_ctxv(level, &ctx, fmt, ap);
}

bool sv__job_cancelled(const sv_job *job)
{
    return atomic_load_explicit(&((sv_job *)job)->cancelled, memory_order_relaxed);
}

void sv__job_set_progress(sv_job *job, double fraction, const char *message)
{
    if (!(fraction >= 0)) /* also catches NaN */
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    char *copy = message != NULL ? strdup(message) : NULL;
    uv_mutex_lock(&job->progress_lock);
    free(job->progress_message);
    job->progress_message = copy;
    job->progress = fraction;
    job->progress_dirty = true;
    uv_mutex_unlock(&job->progress_lock);
}

void sv__job_set_result(sv_job *job, json_t *result)
{
    json_decref(job->result);
    job->result = result;
}

sv_status sv__job_finishv(sv_job *job, sv_status status, int64_t retry_delay_ms, const char *fmt,
                          va_list ap)
{
    free(job->message);
    job->message = NULL;
    if (fmt != NULL) {
        if (vasprintf(&job->message, fmt, ap) < 0)
            job->message = NULL;
    }
    job->status = status;
    job->retry_delay_ms = retry_delay_ms;
    return status;
}

int sv__job_enqueue(sv_job *job, const char *type, json_t *payload, const sv_enqueue_opts *opts)
{
    if (!sv__job_type_name_valid(type)) {
        json_decref(payload);
        return -EINVAL;
    }
    json_t *req = json_object();
    if (req == NULL) {
        json_decref(payload);
        return -ENOMEM;
    }
    json_object_set_new(req, "type", json_string(type));
    json_object_set_new(req, "payload", payload != NULL ? payload : json_object());
    if (opts != NULL) {
        /* Read only the members the plugin's struct has. */
        size_t size = opts->struct_size;
#define HAS(m) (size >= offsetof(sv_enqueue_opts, m) + sizeof(opts->m))
        if (HAS(queue) && opts->queue != NULL)
            json_object_set_new(req, "queue", json_string(opts->queue));
        if (HAS(priority))
            json_object_set_new(req, "priority", json_integer(opts->priority));
        if (HAS(delay_ms) && opts->delay_ms > 0)
            json_object_set_new(req, "delay_ms", json_integer(opts->delay_ms));
        if (HAS(max_attempts) && opts->max_attempts > 0)
            json_object_set_new(req, "max_attempts", json_integer(opts->max_attempts));
        if (HAS(timeout_ms) && opts->timeout_ms > 0)
            json_object_set_new(req, "timeout_ms", json_integer(opts->timeout_ms));
        if (HAS(unique_key) && opts->unique_key != NULL)
            json_object_set_new(req, "unique_key", json_string(opts->unique_key));
#undef HAS
    }
    if (job->followups == NULL)
        job->followups = json_array();
    if (job->followups == NULL || json_array_append_new(job->followups, req) < 0) {
        json_decref(req);
        return -ENOMEM;
    }
    return 0;
}
