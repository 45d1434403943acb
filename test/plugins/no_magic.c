/* no_magic: has an init but no sv_plugin_magic; the host must refuse it unrun. */
#include <supervisor/sdk.h>

SV_EXPORT int sv_plugin_init(sv_plugin *plugin, const sv_host_api *host)
{
    (void)plugin;
    (void)host;
    return 0;
}
