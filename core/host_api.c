/* The function table every plugin's init receives. Append only; see sdk.h. */
#include "config.h"
#include "job.h"
#include "plugin_host.h"

const sv_host_api sv__host_api = {
    .struct_size = sizeof(sv_host_api),
    .abi_major = SV_ABI_MAJOR,
    .abi_minor = SV_ABI_MINOR,
    .host_version = SV_VERSION,
    .register_job_type = sv__plugin_register_job_type,
    .plugin_logv = sv__plugin_logv,
    .plugin_on_unload = sv__plugin_on_unload,
    .job_id = sv__job_id,
    .job_type = sv__job_type,
    .job_queue = sv__job_queue,
    .job_attempt = sv__job_attempt,
    .job_max_attempts = sv__job_max_attempts,
    .job_payload = sv__job_payload,
    .job_logv = sv__job_logv,
    .job_cancelled = sv__job_cancelled,
    .job_set_progress = sv__job_set_progress,
    .job_set_result = sv__job_set_result,
    .job_finishv = sv__job_finishv,
    .job_enqueue = sv__job_enqueue,
};
