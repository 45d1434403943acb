/*
 * init_error: registers a job type and an unload callback, then fails with -EIO. The host
 * must refuse it, forget test.init_error and still run the callback.
 */
#include "common.h"

static sv_status never_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    return sv_job_fail(job, "init_error's handler must never run");
}

static int init_error_init(sv_plugin *plugin)
{
    sv_job_type t = {
        .struct_size = sizeof t,
        .name = "test.init_error",
        .handler = never_handler,
    };
    int r = sv_register_job_type(plugin, &t);
    if (r < 0)
        return r;
    unload_log_register(plugin, "init_error");
    sv_log(plugin, SV_LOG_ERROR, "failing on purpose");
    return -EIO;
}

SV_PLUGIN_DEFINE("init_error", "1.0.0", "Fails its init after registering", init_error_init)
