/*
 * oldstruct: checks how the host reads sv_job_type. test.defaults leaves every numeric
 * member zero, so the host's defaults apply. test.oldstruct pretends to come from an older
 * SDK whose sv_job_type ended after userdata: the members past its struct_size hold
 * nonsense, which the host must not read.
 *
 * It also makes registrations the host must reject with -EINVAL, and ignores them: the
 * plugin must still load (with one warning naming the first rejection). A wrong return code
 * fails its init, so the tests see the plugin refused.
 */
#include <errno.h>

#include <supervisor/sdk.h>

static sv_status ok_handler(sv_job *job, void *userdata)
{
    (void)job;
    (void)userdata;
    return SV_OK;
}

static int check_rejections(sv_plugin *plugin)
{
    sv_job_type t = {.struct_size = sizeof t, .name = "ignored bad name", .handler = ok_handler};
    if (sv_register_job_type(plugin, &t) != -EINVAL)
        return -EPROTO;
    t.name = "test.no_handler";
    t.handler = NULL;
    if (sv_register_job_type(plugin, &t) != -EINVAL)
        return -EPROTO;
    t.name = NULL;
    t.handler = ok_handler;
    if (sv_register_job_type(plugin, &t) != -EINVAL)
        return -EPROTO;
    t.name = "";
    if (sv_register_job_type(plugin, &t) != -EINVAL)
        return -EPROTO;
    t.name = "test.tiny_struct";
    t.struct_size = sizeof(uint32_t);
    if (sv_register_job_type(plugin, &t) != -EINVAL)
        return -EPROTO;
    if (sv_register_job_type(plugin, NULL) != -EINVAL)
        return -EPROTO;
    return 0;
}

static int oldstruct_init(sv_plugin *plugin)
{
    if (check_rejections(plugin) < 0) {
        sv_log(plugin, SV_LOG_ERROR, "a bad registration did not return -EINVAL");
        return -EPROTO;
    }
    sv_job_type t = {
        .struct_size = sizeof t,
        .name = "test.defaults",
        .handler = ok_handler,
    };
    int r = sv_register_job_type(plugin, &t);
    if (r < 0)
        return r;
    sv_job_type old = {
        .struct_size = offsetof(sv_job_type, userdata) + sizeof(void *),
        .name = "test.oldstruct",
        .handler = ok_handler,
        .timeout_ms = 1,
        .max_attempts = 7777,
        .backoff_base_ms = 3,
        .backoff_max_ms = 4,
        .concurrency = 99,
    };
    return sv_register_job_type(plugin, &old);
}

SV_PLUGIN_DEFINE("oldstruct", "1.0.0", "Job types registered with zero and short descriptors",
                 oldstruct_init)
