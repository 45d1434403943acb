/* Stub: the plugin host is being written. */
#include <errno.h>
#include <stdlib.h>

#include "plugin_host.h"

struct sv__plugin_host {
    int dummy;
};

sv__plugin_host *sv__plugin_host_new(const sv__plugin_host_opts *opts)
{
    (void)opts;
    return calloc(1, sizeof(sv__plugin_host));
}
int sv__plugin_host_load_dir(sv__plugin_host *host, const char *dir)
{
    return -ENOSYS;
}
size_t sv__plugin_host_type_count(const sv__plugin_host *host)
{
    return 0;
}
const sv__jobtype *sv__plugin_host_type_at(const sv__plugin_host *host, size_t i)
{
    return NULL;
}
const sv__jobtype *sv__plugin_host_find_type(const sv__plugin_host *host, const char *name)
{
    return NULL;
}
size_t sv__plugin_host_record_count(const sv__plugin_host *host)
{
    return 0;
}
const sv__plugin_record *sv__plugin_host_record_at(const sv__plugin_host *host, size_t i)
{
    return NULL;
}
const char *sv__plugin_name(const sv_plugin *plugin)
{
    return "?";
}
sv__plugin_host *sv__plugin_host_free(sv__plugin_host *host)
{
    free(host);
    return NULL;
}
int sv__plugin_register_job_type(sv_plugin *plugin, const sv_job_type *type)
{
    return -ENOSYS;
}
void sv__plugin_logv(sv_plugin *plugin, int level, const char *fmt, va_list ap) {}
void sv__plugin_on_unload(sv_plugin *plugin, void (*fn)(void *), void *userdata) {}
