/*
 * dup_type: registers test.dup_unique, then test.crash, which crash.so (loaded before it:
 * "crash" < "dup_type") already owns. Its init ignores the -EEXIST and returns 0; the host
 * must refuse it anyway, forget test.dup_unique, leave test.crash to crash.so and run the
 * unload callback.
 */
#include "common.h"

static sv_status never_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    return sv_job_fail(job, "dup_type's handler must never run");
}

static int dup_type_init(sv_plugin *plugin)
{
    unload_log_register(plugin, "dup_type");
    sv_job_type t = {
        .struct_size = sizeof t,
        .name = "test.dup_unique",
        .handler = never_handler,
    };
    if (sv_register_job_type(plugin, &t) < 0)
        return -EINVAL;
    t.name = "test.crash";
    int r = sv_register_job_type(plugin, &t);
    if (r != -EEXIST)
        sv_log(plugin, SV_LOG_ERROR, "registering test.crash again returned %d, not -EEXIST", r);
    return 0;
}

SV_PLUGIN_DEFINE("dup_type", "1.0.0", "Registers a job type another plugin owns", dup_type_init)
