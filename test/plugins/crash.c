/* crash: test.crash takes the whole daemon down with SIGSEGV, as a buggy plugin would. */
#include <signal.h>

#include <supervisor/sdk.h>

static sv_status crash_handler(sv_job *job, void *userdata)
{
    (void)job;
    (void)userdata;
    /*
     * The signal a bad pointer would bring, without the undefined behaviour itself, so the
     * sanitizer builds of the suite see a crash and not a report about this plugin. (The
     * test turns off ASan's own SIGSEGV handler for this daemon.)
     */
    raise(SIGSEGV);
    return SV_OK;
}

static int crash_init(sv_plugin *plugin)
{
    sv_job_type t = {
        .struct_size = sizeof t,
        .name = "test.crash",
        .handler = crash_handler,
        .max_attempts = 1,
        .backoff_base_ms = 10,
        .backoff_max_ms = 100,
    };
    return sv_register_job_type(plugin, &t);
}

SV_PLUGIN_DEFINE("crash", "1.0.0", "Crashes the daemon on purpose", crash_init)
