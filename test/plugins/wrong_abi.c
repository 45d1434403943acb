/* wrong_abi: claims SDK 99.0; the host must refuse it naming both versions. */
#include <supervisor/sdk.h>

/* Written by hand: SV_PLUGIN_DEFINE would stamp this SDK's version into it. */
SV_EXPORT const sv_plugin_info *sv_plugin_magic(void)
{
    static const sv_plugin_info info = {
        sizeof(sv_plugin_info), 99, 0, "wrong_abi", "1.0.0", "Built for SDK 99.0", {0},
    };
    return &info;
}

SV_EXPORT int sv_plugin_init(sv_plugin *plugin, const sv_host_api *host)
{
    (void)plugin;
    (void)host;
    return 0;
}
