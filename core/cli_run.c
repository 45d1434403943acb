/* supervisor-worker run: the daemon. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "supervisor.h"
#include "util.h"

static const char usage_text[] =
    "Usage: supervisor-worker run [OPTIONS]\n"
    "\n"
    "Runs the supervisor: claims ready jobs of the types its plugins handle and runs them.\n"
    "  --max-workers N            jobs running at once (default 4; 1 runs them in sequence)\n"
    "  --poll-interval DURATION   look for jobs at least this often (default 1s; NOTIFY\n"
    "                             wakes the daemon at once, polling is the fallback)\n"
    "  --shutdown-timeout DURATION  on SIGTERM, wait this long for running jobs before\n"
    "                             handing them back (default 30s)\n"
    "  --heartbeat-interval DURATION  heartbeat and lease renewal period (default 5s)\n"
    "  --dead-after DURATION      a supervisor silent this long is dead and its jobs are\n"
    "                             rescued (default 30s; at least 3 heartbeats)\n"
    "  --rescue-interval DURATION how often to look for jobs of dead supervisors (default 10s)\n"
    "  --stuck-after DURATION     a handler still running this long after cancellation is\n"
    "                             reported stuck (default 5s)\n"
    "  --prefetch N               claim up to N jobs ahead of free workers when jobs are\n"
    "                             short (default 512; sized to ~50 ms of work; 0: never)\n"
    "  --synchronous-commit on|off  wait for the WAL flush when recording claims and\n"
    "                             outcomes (default off: a server crash can then only make\n"
    "                             a job run again, never lose it)\n"
    "  --one-shot                 run the jobs that are ready now, then exit (status 1 if\n"
    "                             any of them failed)\n"
    "\n"
    "Durations take ms (default), s, m or h: 500ms, 2s, 1m.\n"
    "\n" SV__COMMON_USAGE;

static int parse_duration(const char *flag, const char *arg, int64_t min, uint64_t *out)
{
    int64_t v;
    if (sv__parse_duration_ms(arg, min, INT64_C(1) << 40, &v) < 0)
        return sv__usage_error("run",
                               "%s must be a duration of at least %lld ms (e.g. 2s), "
                               "not '%s'",
                               flag, (long long)min, arg);
    *out = (uint64_t)v;
    return 0;
}

enum {
    OPT_MAX_WORKERS = SV__OPT_FIRST_COMMAND_OPT,
    OPT_POLL_INTERVAL,
    OPT_SHUTDOWN_TIMEOUT,
    OPT_HEARTBEAT,
    OPT_DEAD_AFTER,
    OPT_RESCUE_INTERVAL,
    OPT_STUCK_AFTER,
    OPT_ONE_SHOT,
    OPT_PREFETCH,
    OPT_SYNC_COMMIT,
};

static int run_opt(int c, const char *arg, void *ctx)
{
    sv__run_opts *o = ctx;
    int64_t n;
    switch (c) {
    case OPT_MAX_WORKERS:
        /* libuv's threadpool holds at most 1024 threads; keep one for the reserve. */
        if (sv__parse_int64(arg, 1, 1000, &n) < 0)
            return sv__usage_error("run", "--max-workers must be 1 to 1000, not '%s'", arg);
        o->max_workers = (uint32_t)n;
        return 0;
    case OPT_POLL_INTERVAL:
        return parse_duration("--poll-interval", arg, 10, &o->poll_interval_ms);
    case OPT_SHUTDOWN_TIMEOUT:
        return parse_duration("--shutdown-timeout", arg, 0, &o->shutdown_timeout_ms);
    case OPT_HEARTBEAT:
        return parse_duration("--heartbeat-interval", arg, 10, &o->heartbeat_ms);
    case OPT_DEAD_AFTER:
        return parse_duration("--dead-after", arg, 100, &o->dead_after_ms);
    case OPT_RESCUE_INTERVAL:
        return parse_duration("--rescue-interval", arg, 10, &o->rescue_interval_ms);
    case OPT_STUCK_AFTER:
        return parse_duration("--stuck-after", arg, 1, &o->stuck_after_ms);
    case OPT_ONE_SHOT:
        o->one_shot = true;
        return 0;
    case OPT_SYNC_COMMIT:
        if (strcmp(arg, "on") == 0)
            o->synchronous_commit = true;
        else if (strcmp(arg, "off") == 0)
            o->synchronous_commit = false;
        else
            return sv__usage_error("run", "--synchronous-commit must be on or off, not '%s'", arg);
        return 0;
    case OPT_PREFETCH:
        if (sv__parse_int64(arg, 0, 100000, &n) < 0)
            return sv__usage_error("run", "--prefetch must be 0 to 100000, not '%s'", arg);
        o->prefetch_max = (uint32_t)n;
        return 0;
    default:
        return 0;
    }
}

int sv__cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        SV__COMMON_LONGOPTS,
        {"max-workers", required_argument, NULL, OPT_MAX_WORKERS},
        {"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
        {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
        {"heartbeat-interval", required_argument, NULL, OPT_HEARTBEAT},
        {"dead-after", required_argument, NULL, OPT_DEAD_AFTER},
        {"rescue-interval", required_argument, NULL, OPT_RESCUE_INTERVAL},
        {"stuck-after", required_argument, NULL, OPT_STUCK_AFTER},
        {"one-shot", no_argument, NULL, OPT_ONE_SHOT},
        {"prefetch", required_argument, NULL, OPT_PREFETCH},
        {"synchronous-commit", required_argument, NULL, OPT_SYNC_COMMIT},
        {NULL, 0, NULL, 0},
    };
    sv__common_opts common;
    sv__common_opts_init(&common, "run");
    sv__run_opts opts;
    sv__run_opts_init(&opts);
    int done = sv__cli_parse(argc, argv, longopts, usage_text, &common, run_opt, &opts);
    if (done >= 0)
        return done;
    if (optind < argc)
        return sv__usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (opts.dead_after_ms < 3 * opts.heartbeat_ms)
        return sv__usage_error("run",
                               "--dead-after (%llu ms) must be at least 3 times "
                               "--heartbeat-interval (%llu ms), or live supervisors look dead",
                               (unsigned long long)opts.dead_after_ms,
                               (unsigned long long)opts.heartbeat_ms);
    if (common.dsn != NULL)
        opts.dsn = common.dsn;
    sv__common_opts_apply(&common);

    /*
     * libuv reads UV_THREADPOOL_SIZE once, when the first work is queued: size it before.
     * One thread beyond the workers so that a stuck handler never starves libuv's own work.
     */
    char size[16];
    snprintf(size, sizeof size, "%u", opts.max_workers + 1);
    setenv("UV_THREADPOOL_SIZE", size, 1);
    /* libpq writes to sockets that may be closed by the server at any moment. */
    signal(SIGPIPE, SIG_IGN);

    sv__plugin_host *plugins = sv__cli_load_plugins(&common);
    if (plugins == NULL)
        return SV__EXIT_FAILURE;

    uv_loop_t loop;
    int r = uv_loop_init(&loop);
    if (r < 0) {
        sv__log_error("cannot create the event loop: %s", uv_strerror(r));
        sv__plugin_host_free(plugins);
        return SV__EXIT_FAILURE;
    }
    int status = sv__supervisor_run(&loop, &opts, plugins);
    r = uv_loop_close(&loop);
    if (r != 0) {
        sv__log_error("event loop did not close cleanly: %s", uv_strerror(r));
        status = SV__EXIT_FAILURE;
    }
    sv__plugin_host_free(plugins);
    return status;
}
