/* supervisor-worker migrate: creates or upgrades the schema. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "migrate.h"

static const char usage_text[] =
    "Usage: supervisor-worker migrate [--status] [OPTIONS]\n"
    "\n"
    "Applies the pending schema migrations (safe to run from several hosts at once).\n"
    "  --status              only print the database's and this binary's schema versions\n"
    "\n" SV__COMMON_USAGE;

enum { OPT_STATUS = SV__OPT_FIRST_COMMAND_OPT };

static int migrate_opt(int c, const char *arg, void *ctx)
{
    (void)arg;
    if (c == OPT_STATUS)
        *(bool *)ctx = true;
    return 0;
}

int sv__cmd_migrate(int argc, char **argv)
{
    static const struct option longopts[] = {
        SV__COMMON_LONGOPTS,
        {"status", no_argument, NULL, OPT_STATUS},
        {NULL, 0, NULL, 0},
    };
    sv__common_opts common;
    sv__common_opts_init(&common, "migrate");
    bool status_only = false;
    int done = sv__cli_parse(argc, argv, longopts, usage_text, &common, migrate_opt, &status_only);
    if (done >= 0)
        return done;
    if (optind < argc)
        return sv__usage_error("migrate", "unexpected argument '%s'", argv[optind]);
    sv__common_opts_apply(&common);

    PGconn *conn = sv__cli_connect(&common);
    if (conn == NULL)
        return SV__EXIT_FAILURE;
    int ret = SV__EXIT_OK;
    if (status_only) {
        int version;
        if (sv__schema_version_read(conn, &version) < 0)
            ret = SV__EXIT_FAILURE;
        else
            printf("database schema version %d; this binary's %d (%s)\n", version,
                   sv__schema_version_latest(),
                   version == sv__schema_version_latest()  ? "up to date"
                   : version < sv__schema_version_latest() ? "migrate to upgrade"
                                                           : "database is newer");
    } else {
        int r = sv__migrate(conn);
        if (r < 0)
            ret = SV__EXIT_FAILURE;
        else if (r == 0)
            printf("schema up to date at version %d\n", sv__schema_version_latest());
        else
            printf("applied %d migration%s; schema at version %d\n", r, r == 1 ? "" : "s",
                   sv__schema_version_latest());
    }
    PQfinish(conn);
    return ret;
}
