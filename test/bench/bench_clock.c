/*
 * bench.clock: a job type for the latency benchmark (test/bench/bench.py). The handler
 * reads CLOCK_REALTIME the moment it starts and stores it as the job's result,
 * {"t_us": <microseconds since the epoch>}, so that the benchmark can subtract the time the
 * producer saw its enqueue commit. Producer and daemon run on the same host: same clock.
 */
#include <time.h>

#include <supervisor/sdk.h>

static sv_status clock_handler(sv_job *job, void *userdata)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    (void)userdata;
    json_int_t t_us = (json_int_t)ts.tv_sec * 1000000 + (json_int_t)(ts.tv_nsec / 1000);
    json_t *result = json_object();
    if (result == NULL || json_object_set_new(result, "t_us", json_integer(t_us)) < 0) {
        json_decref(result);
        return sv_job_fail(job, "out of memory");
    }
    sv_job_set_result(job, result);
    return SV_OK;
}

static int clock_init(sv_plugin *plugin)
{
    sv_job_type type = {
        .struct_size = sizeof type,
        .name = "bench.clock",
        .handler = clock_handler,
    };
    return sv_register_job_type(plugin, &type);
}

SV_PLUGIN_DEFINE("bench_clock", "1.0.0",
                 "Records the handler's start time (CLOCK_REALTIME) as the job's result; for the "
                 "latency benchmark",
                 clock_init)
