/* no_init: a valid magic but no sv_plugin_init; the host must refuse it. */
#include <supervisor/sdk.h>

SV_EXPORT const sv_plugin_info *sv_plugin_magic(void)
{
    static const sv_plugin_info info = {
        sizeof(sv_plugin_info), SV_ABI_MAJOR, SV_ABI_MINOR, "no_init", "1.0.0", "Has no init", {0},
    };
    return &info;
}
