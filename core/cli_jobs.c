/* supervisor-worker jobs list|show|retry|cancel: the operator's view of the job table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static const char usage_text[] =
    "Usage: supervisor-worker jobs list [--state STATE] [--type TYPE] [--limit N]\n"
    "       supervisor-worker jobs show ID\n"
    "       supervisor-worker jobs retry ID   (a dead or cancelled job runs again)\n"
    "       supervisor-worker jobs cancel ID  (a queued job will not run)\n"
    "\n"
    "STATE is queued, running, succeeded, dead or cancelled.\n"
    "\n" SV__COMMON_USAGE;

static const char *const states[] = {"queued", "running", "succeeded", "dead", "cancelled"};

static int list_jobs(PGconn *conn, const char *state, const char *type, const char *limit)
{
    const char *params[] = {state, type, limit};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT id, type, queue, state, priority, attempts,"
                     "       coalesce(max_attempts::text, '-'),"
                     "       to_char(run_at, 'YYYY-MM-DD HH24:MI:SS'),"
                     "       coalesce(errors -> -1 ->> 'error', '')"
                     "  FROM sv_jobs"
                     " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR type = $2)"
                     " ORDER BY id DESC LIMIT $3::integer",
                     3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sv__log_error("listing jobs failed: %s", sv__pg_error(res));
        PQclear(res);
        return SV__EXIT_FAILURE;
    }
    printf("%-10s %-20s %-10s %-10s %5s %8s  %-19s  %s\n", "ID", "TYPE", "QUEUE", "STATE", "PRIO",
           "ATTEMPTS", "RUN AT (UTC)", "LAST ERROR");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-10s %-20s %-10s %-10s %5s %4s/%-3s  %-19s  %.60s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
               PQgetvalue(res, i, 7), PQgetvalue(res, i, 8));
    PQclear(res);
    return SV__EXIT_OK;
}

static int show_job(PGconn *conn, const char *id)
{
    const char *params[] = {id};
    PGresult *res =
        PQexecParams(conn, "SELECT jsonb_pretty(to_jsonb(j)) FROM sv_jobs j WHERE id = $1", 1, NULL,
                     params, NULL, NULL, 0);
    int ret = SV__EXIT_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sv__log_error("reading job %s failed: %s", id, sv__pg_error(res));
        ret = SV__EXIT_FAILURE;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "supervisor-worker jobs: no job %s\n", id);
        ret = SV__EXIT_FAILURE;
    } else {
        printf("%s\n", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return ret;
}

/* retry and cancel: the SQL functions decide, so the CLI and SQL users behave the same. */
static int act_on_job(PGconn *conn, const char *action, const char *id)
{
    const char *params[] = {id};
    const char *sql = strcmp(action, "retry") == 0
                          ? "SELECT sv_retry($1), (SELECT state FROM sv_jobs WHERE id = $1)"
                          : "SELECT sv_cancel($1), (SELECT state FROM sv_jobs WHERE id = $1)";
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    int ret = SV__EXIT_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sv__log_error("%s of job %s failed: %s", action, id, sv__pg_error(res));
        ret = SV__EXIT_FAILURE;
    } else if (PQgetisnull(res, 0, 1)) {
        fprintf(stderr, "supervisor-worker jobs: no job %s\n", id);
        ret = SV__EXIT_FAILURE;
    } else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        fprintf(stderr, "supervisor-worker jobs: job %s is %s; %s\n", id, PQgetvalue(res, 0, 1),
                strcmp(action, "retry") == 0 ? "only dead or cancelled jobs can be retried"
                                             : "only queued jobs can be cancelled");
        ret = SV__EXIT_FAILURE;
    } else {
        printf("job %s %s\n", id, strcmp(action, "retry") == 0 ? "queued again" : "cancelled");
    }
    PQclear(res);
    return ret;
}

enum { OPT_STATE = SV__OPT_FIRST_COMMAND_OPT, OPT_TYPE, OPT_LIMIT };

typedef struct jobs_args {
    const char *state, *type, *limit;
} jobs_args;

static int jobs_opt(int c, const char *arg, void *ctx)
{
    jobs_args *a = ctx;
    int64_t n;
    switch (c) {
    case OPT_STATE:
        a->state = NULL;
        for (size_t i = 0; i < SV__ARRAY_SIZE(states); i++)
            if (strcmp(arg, states[i]) == 0)
                a->state = states[i];
        if (a->state == NULL)
            return sv__usage_error("jobs",
                                   "--state must be queued, running, succeeded, dead or "
                                   "cancelled, not '%s'",
                                   arg);
        return 0;
    case OPT_TYPE:
        a->type = arg;
        return 0;
    case OPT_LIMIT:
        if (sv__parse_int64(arg, 1, 1000000, &n) < 0)
            return sv__usage_error("jobs", "--limit must be 1 to 1000000, not '%s'", arg);
        a->limit = arg;
        return 0;
    default:
        return 0;
    }
}

int sv__cmd_jobs(int argc, char **argv)
{
    static const struct option longopts[] = {
        SV__COMMON_LONGOPTS,
        {"state", required_argument, NULL, OPT_STATE},
        {"type", required_argument, NULL, OPT_TYPE},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {NULL, 0, NULL, 0},
    };
    sv__common_opts common;
    sv__common_opts_init(&common, "jobs");
    jobs_args args = {.limit = "50"};
    int done = sv__cli_parse(argc, argv, longopts, usage_text, &common, jobs_opt, &args);
    if (done >= 0)
        return done;
    const char *state = args.state, *type = args.type, *limit = args.limit;
    int64_t n;
    if (optind >= argc)
        return sv__usage_error("jobs", "missing the action: list, show, retry or cancel");
    const char *action = argv[optind++];
    const char *id = NULL;
    if (strcmp(action, "list") == 0) {
        if (optind < argc)
            return sv__usage_error("jobs", "unexpected argument '%s'", argv[optind]);
    } else if (strcmp(action, "show") == 0 || strcmp(action, "retry") == 0 ||
               strcmp(action, "cancel") == 0) {
        if (optind >= argc)
            return sv__usage_error("jobs", "%s needs a job ID", action);
        id = argv[optind++];
        if (sv__parse_int64(id, 1, INT64_MAX, &n) < 0)
            return sv__usage_error("jobs", "invalid job ID '%s'", id);
        if (optind < argc)
            return sv__usage_error("jobs", "unexpected argument '%s'", argv[optind]);
    } else {
        return sv__usage_error("jobs", "unknown action '%s': use list, show, retry or cancel",
                               action);
    }
    sv__common_opts_apply(&common);
    PGconn *conn = sv__cli_connect(&common);
    if (conn == NULL)
        return SV__EXIT_FAILURE;
    int ret;
    if (id == NULL)
        ret = list_jobs(conn, state, type, limit);
    else if (strcmp(action, "show") == 0)
        ret = show_job(conn, id);
    else
        ret = act_on_job(conn, action, id);
    PQfinish(conn);
    return ret;
}
