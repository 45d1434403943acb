/* log: logs each job's payload. Useful to see jobs flow and as a plugin example. */
#include <stdlib.h>

#include <supervisor/sdk.h>

static sv_status log_handler(sv_job *job, void *userdata)
{
    (void)userdata;
    char *text = json_dumps(sv_job_payload(job), JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return sv_job_fail(job, "cannot serialise the payload");
    sv_job_log(job, SV_LOG_INFO, "payload %s", text);
    free(text);
    return SV_OK;
}

static int log_init(sv_plugin *plugin)
{
    sv_job_type type = {
        .struct_size = sizeof type,
        .name = "log",
        .handler = log_handler,
    };
    return sv_register_job_type(plugin, &type);
}

SV_PLUGIN_DEFINE("log", "1.0.0", "Logs each job's payload", log_init)
