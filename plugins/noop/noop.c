/* noop: a job type that does nothing, for benchmarks and smoke tests. */
#include <supervisor/sdk.h>

static sv_status noop_handler(sv_job *job, void *userdata)
{
    (void)job;
    (void)userdata;
    return SV_OK;
}

static int noop_init(sv_plugin *plugin)
{
    sv_job_type type = {
        .struct_size = sizeof type,
        .name = "noop",
        .handler = noop_handler,
    };
    return sv_register_job_type(plugin, &type);
}

SV_PLUGIN_DEFINE("noop", "1.0.0", "Does nothing; for benchmarks and smoke tests", noop_init)
