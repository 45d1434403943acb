/* supervisor-worker enqueue TYPE [JSON]: the CLI face of sv_enqueue(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "job.h"
#include "util.h"

static const char usage_text[] =
    "Usage: supervisor-worker enqueue TYPE [JSON] [OPTIONS]\n"
    "\n"
    "Adds a job and prints its id. JSON is the payload (default {}).\n"
    "  --queue NAME          queue name (default: default)\n"
    "  --priority N          smaller runs first (default 0)\n"
    "  --run-at TIME         run no earlier than TIME (ISO 8601, e.g. 2027-01-31T12:00:00Z)\n"
    "  --delay DURATION      run no earlier than DURATION from now (e.g. 30s, 5m)\n"
    "  --max-attempts N      attempts before the job is dead (default: the type's)\n"
    "  --timeout DURATION    per-attempt timeout (default: the type's)\n"
    "  --unique-key KEY      at most one queued or running job of this type with KEY;\n"
    "                        prints the existing job's id when there is one\n"
    "\n" SV__COMMON_USAGE;

enum {
    OPT_QUEUE = SV__OPT_FIRST_COMMAND_OPT,
    OPT_PRIORITY,
    OPT_RUN_AT,
    OPT_DELAY,
    OPT_MAX_ATTEMPTS,
    OPT_TIMEOUT,
    OPT_UNIQUE_KEY,
};

typedef struct enqueue_args {
    const char *queue, *run_at, *unique_key;
    int64_t priority, delay_ms, max_attempts, timeout_ms;
} enqueue_args;

static int enqueue_opt(int c, const char *arg, void *ctx)
{
    enqueue_args *a = ctx;
    switch (c) {
    case OPT_QUEUE:
        if (*arg == '\0')
            return sv__usage_error("enqueue", "--queue must not be empty");
        a->queue = arg;
        return 0;
    case OPT_PRIORITY:
        if (sv__parse_int64(arg, INT32_MIN, INT32_MAX, &a->priority) < 0)
            return sv__usage_error("enqueue", "--priority must be an integer, not '%s'", arg);
        return 0;
    case OPT_RUN_AT:
        a->run_at = arg;
        return 0;
    case OPT_DELAY:
        if (sv__parse_duration_ms(arg, 0, INT64_C(1) << 40, &a->delay_ms) < 0)
            return sv__usage_error(
                "enqueue", "--delay must be a duration like 500ms, 30s or 5m, not '%s'", arg);
        return 0;
    case OPT_MAX_ATTEMPTS:
        if (sv__parse_int64(arg, 1, INT32_MAX, &a->max_attempts) < 0)
            return sv__usage_error("enqueue", "--max-attempts must be a positive integer, not '%s'",
                                   arg);
        return 0;
    case OPT_TIMEOUT:
        if (sv__parse_duration_ms(arg, 1, INT32_MAX, &a->timeout_ms) < 0)
            return sv__usage_error("enqueue",
                                   "--timeout must be a positive duration like 30s, not '%s'", arg);
        return 0;
    case OPT_UNIQUE_KEY:
        if (*arg == '\0')
            return sv__usage_error("enqueue", "--unique-key must not be empty");
        a->unique_key = arg;
        return 0;
    default:
        return 0;
    }
}

int sv__cmd_enqueue(int argc, char **argv)
{
    static const struct option longopts[] = {
        SV__COMMON_LONGOPTS,
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"priority", required_argument, NULL, OPT_PRIORITY},
        {"run-at", required_argument, NULL, OPT_RUN_AT},
        {"delay", required_argument, NULL, OPT_DELAY},
        {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"unique-key", required_argument, NULL, OPT_UNIQUE_KEY},
        {NULL, 0, NULL, 0},
    };
    sv__common_opts common;
    sv__common_opts_init(&common, "enqueue");
    enqueue_args args = {.queue = "default", .delay_ms = -1};
    int done = sv__cli_parse(argc, argv, longopts, usage_text, &common, enqueue_opt, &args);
    if (done >= 0)
        return done;
    const char *queue = args.queue, *run_at = args.run_at, *unique_key = args.unique_key;
    int64_t priority = args.priority, delay_ms = args.delay_ms;
    int64_t max_attempts = args.max_attempts, timeout_ms = args.timeout_ms;
    if (run_at != NULL && delay_ms >= 0)
        return sv__usage_error("enqueue", "--run-at and --delay are mutually exclusive");
    if (optind >= argc)
        return sv__usage_error("enqueue", "missing the job TYPE");
    const char *type = argv[optind++];
    if (!sv__job_type_name_valid(type))
        return sv__usage_error("enqueue", "invalid job type '%s': use 1-128 of A-Z a-z 0-9 _ . : -",
                               type);
    const char *payload_text = "{}";
    if (optind < argc)
        payload_text = argv[optind++];
    if (optind < argc)
        return sv__usage_error("enqueue", "unexpected argument '%s'", argv[optind]);

    json_error_t jerr;
    json_t *payload = json_loads(payload_text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (payload == NULL)
        return sv__usage_error("enqueue", "invalid JSON payload: %s at line %d column %d",
                               jerr.text, jerr.line, jerr.column);
    char *payload_canon = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(payload);
    sv__common_opts_apply(&common);

    char prio_s[24], max_s[24], timeout_s[24], delay_s[32];
    snprintf(prio_s, sizeof prio_s, "%lld", (long long)priority);
    snprintf(max_s, sizeof max_s, "%lld", (long long)max_attempts);
    snprintf(timeout_s, sizeof timeout_s, "%lld", (long long)timeout_ms);
    snprintf(delay_s, sizeof delay_s, "%lld", (long long)delay_ms);
    const char *params[] = {
        type,
        payload_canon,
        queue,
        prio_s,
        run_at,
        delay_ms >= 0 ? delay_s : NULL,
        max_attempts > 0 ? max_s : NULL,
        timeout_ms > 0 ? timeout_s : NULL,
        unique_key,
    };
    PGconn *conn = sv__cli_connect(&common);
    if (conn == NULL) {
        free(payload_canon);
        return SV__EXIT_FAILURE;
    }
    PGresult *res =
        PQexecParams(conn,
                     "SELECT sv_enqueue($1, $2::jsonb, $3, $4::integer,"
                     " coalesce($5::timestamptz, now() + $6::bigint * interval '1 millisecond'),"
                     " $7::integer, $8::integer, $9)",
                     (int)SV__ARRAY_SIZE(params), NULL, params, NULL, NULL, 0);
    int ret = SV__EXIT_OK;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        printf("%s\n", PQgetvalue(res, 0, 0));
    } else {
        const char *msg = sv__pg_error(res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* Class 22 (data exception): a value the database rejected, e.g. a bad --run-at. */
        if (state != NULL && strncmp(state, "22", 2) == 0) {
            ret = sv__usage_error("enqueue", "invalid value: %.*s", (int)strcspn(msg, "\n"), msg);
        } else {
            sv__log_error("enqueue failed: %.*s", (int)strcspn(msg, "\n"), msg);
            ret = SV__EXIT_FAILURE;
        }
    }
    PQclear(res);
    PQfinish(conn);
    free(payload_canon);
    return ret;
}
