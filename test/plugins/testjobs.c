/*
 * testjobs: the job types the integration tests drive the daemon with. Every type has a
 * small backoff (10 ms doubling to 100 ms) so that retry tests finish quickly.
 */
#include <stdatomic.h>

#include "common.h"

#define STEP_MS 5

/* Sleeps ms in small steps; false when the job was cancelled before the time was up. */
static bool sleep_cancellable(sv_job *job, json_int_t ms)
{
    while (ms > 0) {
        if (sv_job_cancelled(job))
            return false;
        long step = ms < STEP_MS ? (long)ms : STEP_MS;
        sleep_ms(step);
        ms -= step;
    }
    return !sv_job_cancelled(job);
}

/* test.sleep {"ms": N}: sleeps N ms; stops promptly when cancelled. */
static sv_status sleep_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    if (!sleep_cancellable(job, payload_int(job, "ms", 0)))
        return sv_job_retry(job, -1, "cancelled");
    return SV_OK;
}

/* test.flaky {"fail_times": N}: fails the first N attempts, then succeeds. */
static sv_status flaky_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    json_int_t fail_times = payload_int(job, "fail_times", 1);
    uint32_t attempt = sv_job_attempt(job);
    if ((json_int_t)attempt <= fail_times)
        return sv_job_retry(job, -1, "flaky failure %u of %d", attempt, (int)fail_times);
    sv_job_set_result(job, json_pack("{s:i}", "attempts", (int)attempt));
    return SV_OK;
}

/* test.fail {"reason": S}: fails permanently. */
static sv_status fail_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    const char *reason = payload_str(job, "reason");
    return sv_job_fail(job, "permanent failure: %s", reason != NULL ? reason : "no reason");
}

/* test.hang {"ms": N}: sleeps N ms and ignores cancellation, like a stuck handler. */
static sv_status hang_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    sleep_ms((long)payload_int(job, "ms", 1000));
    return SV_OK;
}

/* test.echo: the result is a copy of the payload. */
static sv_status echo_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    sv_job_set_result(job, json_deep_copy(sv_job_payload(job)));
    return SV_OK;
}

/*
 * test.record {"file": PATH, "ms": N}: sleeps N ms (cancellable; a cancelled attempt writes
 * nothing), then appends "<job id> <pid> <attempt>\n" to PATH with one write() on an
 * O_APPEND descriptor, so lines from several daemons sharing the file never interleave.
 * Counting the lines per job id proves how often each job ran to completion.
 */
static sv_status record_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    const char *path = payload_str(job, "file");
    if (path == NULL)
        return sv_job_fail(job, "payload has no \"file\"");
    if (!sleep_cancellable(job, payload_int(job, "ms", 0)))
        return sv_job_retry(job, -1, "cancelled");
    char line[96];
    int n = snprintf(line, sizeof line, "%lld %ld %u\n", (long long)sv_job_id(job), (long)getpid(),
                     sv_job_attempt(job));
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sv_job_retry(job, -1, "cannot open %s: %s", path, strerror(errno));
    ssize_t w = write(fd, line, (size_t)n);
    int err = errno;
    close(fd);
    if (w != n)
        return sv_job_retry(job, -1, "cannot write %s: %s", path,
                            w < 0 ? strerror(err) : "short write");
    return SV_OK;
}

/*
 * test.single {"ms": N}: registered with concurrency 1. Sleeps N ms and sets its result to
 * {"max_concurrent": M}, the most handlers of this type it ever saw running at once.
 */
static atomic_int single_active, single_max;

static sv_status single_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    int now = atomic_fetch_add(&single_active, 1) + 1;
    int seen = atomic_load(&single_max);
    while (now > seen && !atomic_compare_exchange_weak(&single_max, &seen, now))
        ;
    bool done = sleep_cancellable(job, payload_int(job, "ms", 0));
    atomic_fetch_sub(&single_active, 1);
    if (!done)
        return sv_job_retry(job, -1, "cancelled");
    sv_job_set_result(job, json_pack("{s:i}", "max_concurrent", atomic_load(&single_max)));
    return SV_OK;
}

/* test.spawn {"children": N}: enqueues N test.echo jobs {"parent": id, "i": k}. */
static sv_status spawn_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    json_int_t children = payload_int(job, "children", 1);
    for (json_int_t k = 0; k < children; k++) {
        json_t *payload = json_pack("{s:I, s:I}", "parent", (json_int_t)sv_job_id(job), "i", k);
        int r = sv_job_enqueue(job, "test.echo", payload, NULL);
        if (r < 0)
            return sv_job_fail(job, "cannot enqueue child %d: %s", (int)k, strerror(-r));
    }
    return SV_OK;
}

/* test.progress {"ms": N}: reports progress four times, N ms apart, then succeeds. */
static sv_status progress_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    json_int_t ms = payload_int(job, "ms", 0);
    static const char *const steps[] = {"started", "a quarter", "half way", "done"};
    for (int i = 0; i < 4; i++) {
        sv_job_set_progress(job, i / 3.0, steps[i]);
        if (i < 3 && !sleep_cancellable(job, ms))
            return sv_job_retry(job, -1, "cancelled");
    }
    return SV_OK;
}

static int testjobs_init(sv_plugin *plugin)
{
    static const struct {
        const char *name;
        sv_handler_fn handler;
        uint32_t concurrency;
    } types[] = {
        /* Unlimited unless a concurrency is given. */
        {"test.sleep", sleep_handler, 0},   {"test.flaky", flaky_handler, 0},
        {"test.fail", fail_handler, 0},     {"test.hang", hang_handler, 0},
        {"test.echo", echo_handler, 0},     {"test.record", record_handler, 0},
        {"test.spawn", spawn_handler, 0},   {"test.progress", progress_handler, 0},
        {"test.single", single_handler, 1},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        sv_job_type t = {
            .struct_size = sizeof t,
            .name = types[i].name,
            .handler = types[i].handler,
            .backoff_base_ms = 10,
            .backoff_max_ms = 100,
            .concurrency = types[i].concurrency,
        };
        int r = sv_register_job_type(plugin, &t);
        if (r < 0)
            return r;
    }
    unload_log_register(plugin, "testjobs:1");
    unload_log_register(plugin, "testjobs:2");
    return 0;
}

SV_PLUGIN_DEFINE("testjobs", "1.0.0", "Job types for the test suite", testjobs_init)
