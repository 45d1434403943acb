/*
 * The daemon: claims ready jobs, runs them on the libuv threadpool, writes their outcomes,
 * heartbeats, rescues the jobs of dead supervisors, and shuts down in stages.
 *
 * All state belongs to the loop thread; handlers run on pool threads and touch only their
 * own sv_job (see job.h).
 */
#ifndef SV_CORE_SUPERVISOR_H
#define SV_CORE_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "plugin_host.h"

typedef struct sv__run_opts {
    const char *dsn;              /* libpq conninfo; "" uses libpq's environment */
    uint32_t max_workers;         /* jobs in flight at most (default 4) */
    uint64_t poll_interval_ms;    /* claim at least this often when idle (default 1000) */
    uint64_t shutdown_timeout_ms; /* grace period for running jobs on SIGTERM (30000) */
    uint64_t heartbeat_ms;        /* workers row and lease refresh (5000) */
    uint64_t dead_after_ms;       /* lease length: no heartbeat for this long = dead (30000) */
    uint64_t rescue_interval_ms;  /* how often to look for expired leases (10000) */
    uint64_t stuck_after_ms;      /* a cancelled handler still running this long is stuck */
    uint32_t prefetch_max;        /* local queue bound; 0: claim only for free slots (512) */
    bool synchronous_commit;      /* wait for WAL flush on claims and outcomes (false) */
    bool one_shot;                /* run what is ready at start, then exit */
} sv__run_opts;

void sv__run_opts_init(sv__run_opts *o);

/*
 * Runs the daemon on loop until it stops. Returns the process exit status: 0 after a clean
 * shutdown (or a one-shot run where every job succeeded), 1 when a one-shot job failed or a
 * fatal error occurred. The plugin host must stay loaded until this returns.
 */
int sv__supervisor_run(uv_loop_t *loop, const sv__run_opts *opts, sv__plugin_host *plugins);

#endif
