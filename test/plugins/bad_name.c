/* bad_name: registers a job type with an invalid name and returns the -EINVAL it gets. */
#include <supervisor/sdk.h>

static sv_status never_handler(sv_job *job, void *userdata)
{
    (void)job;
    (void)userdata;
    return SV_FAIL;
}

static int bad_name_init(sv_plugin *plugin)
{
    sv_job_type t = {
        .struct_size = sizeof t,
        .name = "bad name!",
        .handler = never_handler,
    };
    return sv_register_job_type(plugin, &t);
}

SV_PLUGIN_DEFINE("bad_name", "1.0.0", "Registers an invalid job type name", bad_name_init)
