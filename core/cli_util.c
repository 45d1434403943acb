#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"

void sv__common_opts_init(sv__common_opts *o, const char *command)
{
    memset(o, 0, sizeof *o);
    o->command = command;
    opterr = 0;
    o->plugins_dir = SV_PLUGINDIR;
    o->log_format = SV__LOG_FORMAT_TEXT;
    o->log_level = SV_LOG_INFO;
}

int sv__usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "supervisor-worker %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return SV__EXIT_USAGE;
}

/* Reports the flag getopt_long just rejected ('?'), as one line; returns SV__EXIT_USAGE. */
static int unknown_option(const char *cmd, char **argv)
{
    /* getopt's own messages are off (opterr = 0): one line of ours instead. */
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    return sv__usage_error(cmd, "unknown option or missing value: '%s' (see --help)", arg);
}

/*
 * Handles one of the common options (getopt_long returned c). Returns 1 when c was one of
 * them, 0 when it was not, or -SV__EXIT_USAGE after printing an error.
 */
static int common_opt(sv__common_opts *o, int c, const char *arg)
{
    switch (c) {
    case SV__OPT_DSN:
        o->dsn = arg;
        return 1;
    case SV__OPT_PLUGINS_DIR:
        o->plugins_dir = arg;
        return 1;
    case SV__OPT_STRICT_PLUGINS:
        o->strict_plugins = true;
        return 1;
    case SV__OPT_LOG_FORMAT:
        if (strcmp(arg, "text") == 0)
            o->log_format = SV__LOG_FORMAT_TEXT;
        else if (strcmp(arg, "json") == 0)
            o->log_format = SV__LOG_FORMAT_JSON;
        else
            return -sv__usage_error(o->command, "--log-format must be text or json, not '%s'", arg);
        return 1;
    case SV__OPT_LOG_LEVEL: {
        int level = sv__log_level_parse(arg);
        if (level < 0)
            return -sv__usage_error(
                o->command, "--log-level must be error, warning, info or debug, not '%s'", arg);
        o->log_level = level;
        return 1;
    }
    default:
        return 0;
    }
}

int sv__cli_parse(int argc, char **argv, const struct option *longopts, const char *usage,
                  sv__common_opts *common, sv__cli_opt_fn fn, void *ctx)
{
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int r = common_opt(common, c, optarg);
        if (r < 0)
            return -r;
        if (r > 0)
            continue;
        if (c == SV__OPT_HELP) {
            fputs(usage, stdout);
            return SV__EXIT_OK;
        }
        if (c < SV__OPT_FIRST_COMMAND_OPT || fn == NULL)
            return unknown_option(common->command, argv);
        r = fn(c, optarg, ctx);
        if (r != 0)
            return r;
    }
    return -1;
}

void sv__common_opts_apply(const sv__common_opts *o)
{
    sv__log_setup(o->log_format, o->log_level);
}

sv__plugin_host *sv__cli_load_plugins(const sv__common_opts *o)
{
    sv__plugin_host_opts hopts = {.strict = o->strict_plugins};
    sv__plugin_host *host = sv__plugin_host_new(&hopts);
    int r = sv__plugin_host_load_dir(host, o->plugins_dir);
    if (r < 0) {
        if (r == -EPERM && o->strict_plugins)
            sv__log_error("--strict-plugins: refusing to start because a plugin was refused");
        else
            sv__log_error("cannot load plugins from %s: %s", o->plugins_dir,
                          sv__plugin_host_dir_error(host) != NULL ? sv__plugin_host_dir_error(host)
                                                                  : strerror(-r));
        sv__plugin_host_free(host);
        return NULL;
    }
    return host;
}

PGconn *sv__cli_connect(const sv__common_opts *o)
{
    PGconn *conn = PQconnectdb(o->dsn != NULL ? o->dsn : "");
    if (PQstatus(conn) != CONNECTION_OK) {
        /* libpq's message ends with a newline and may span lines; keep the first. */
        const char *msg = PQerrorMessage(conn);
        size_t n = strcspn(msg, "\n");
        sv__log_error("cannot connect to PostgreSQL: %.*s", (int)n, msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

const char *sv__pg_error(const PGresult *res)
{
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL)
        msg = PQresultErrorMessage(res);
    return msg != NULL && *msg ? msg : "unknown error";
}
