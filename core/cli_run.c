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

int sv__cmd_run(int argc, char **argv)
{
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
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int r = sv__common_opt(&common, c, optarg);
        if (r < 0)
            return -r;
        if (r > 0)
            continue;
        int64_t n;
        switch (c) {
        case SV__OPT_HELP:
            fputs(usage_text, stdout);
            return SV__EXIT_OK;
        case OPT_MAX_WORKERS:
            /* libuv's threadpool holds at most 1024 threads; keep one for the reserve. */
            if (sv__parse_int64(optarg, 1, 1000, &n) < 0)
                return sv__usage_error("run", "--max-workers must be 1 to 1000, not '%s'", optarg);
            opts.max_workers = (uint32_t)n;
            break;
        case OPT_POLL_INTERVAL:
            if (parse_duration("--poll-interval", optarg, 10, &opts.poll_interval_ms))
                return SV__EXIT_USAGE;
            break;
        case OPT_SHUTDOWN_TIMEOUT:
            if (parse_duration("--shutdown-timeout", optarg, 0, &opts.shutdown_timeout_ms))
                return SV__EXIT_USAGE;
            break;
        case OPT_HEARTBEAT:
            if (parse_duration("--heartbeat-interval", optarg, 10, &opts.heartbeat_ms))
                return SV__EXIT_USAGE;
            break;
        case OPT_DEAD_AFTER:
            if (parse_duration("--dead-after", optarg, 100, &opts.dead_after_ms))
                return SV__EXIT_USAGE;
            break;
        case OPT_RESCUE_INTERVAL:
            if (parse_duration("--rescue-interval", optarg, 10, &opts.rescue_interval_ms))
                return SV__EXIT_USAGE;
            break;
        case OPT_STUCK_AFTER:
            if (parse_duration("--stuck-after", optarg, 1, &opts.stuck_after_ms))
                return SV__EXIT_USAGE;
            break;
        case OPT_ONE_SHOT:
            opts.one_shot = true;
            break;
        case OPT_SYNC_COMMIT:
            if (strcmp(optarg, "on") == 0)
                opts.synchronous_commit = true;
            else if (strcmp(optarg, "off") == 0)
                opts.synchronous_commit = false;
            else
                return sv__usage_error("run", "--synchronous-commit must be on or off, not '%s'",
                                       optarg);
            break;
        case OPT_PREFETCH:
            if (sv__parse_int64(optarg, 0, 100000, &n) < 0)
                return sv__usage_error("run", "--prefetch must be 0 to 100000, not '%s'", optarg);
            opts.prefetch_max = (uint32_t)n;
            break;
        default:
            return sv__unknown_option("run", argv);
        }
    }
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
