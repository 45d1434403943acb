/* Subcommands and the option handling they share. */
#ifndef SV_CORE_CLI_H
#define SV_CORE_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "config.h"
#include "log.h"
#include "plugin_host.h"

/* Exit statuses of every subcommand. */
#define SV__EXIT_OK 0
#define SV__EXIT_FAILURE 1 /* the command ran and something failed */
#define SV__EXIT_USAGE 2   /* bad flag or value; nothing was done */

/* Options every subcommand accepts. */
typedef struct sv__common_opts {
    const char *command;     /* for error messages: "run", "enqueue", ... */
    const char *dsn;         /* libpq connection string; NULL: libpq's environment */
    const char *plugins_dir; /* default SV_PLUGINDIR */
    bool strict_plugins;     /* refuse to start when any plugin is refused */
    sv__log_format log_format;
    int log_level;
} sv__common_opts;

enum {
    SV__OPT_DSN = 0x100,
    SV__OPT_PLUGINS_DIR,
    SV__OPT_STRICT_PLUGINS,
    SV__OPT_LOG_FORMAT,
    SV__OPT_LOG_LEVEL,
    SV__OPT_HELP,
    SV__OPT_FIRST_COMMAND_OPT, /* subcommands number their own options from here */
};

#define SV__COMMON_LONGOPTS                                                                        \
    {"dsn", required_argument, NULL, SV__OPT_DSN},                                                 \
        {"plugins-dir", required_argument, NULL, SV__OPT_PLUGINS_DIR},                             \
        {"strict-plugins", no_argument, NULL, SV__OPT_STRICT_PLUGINS},                             \
        {"log-format", required_argument, NULL, SV__OPT_LOG_FORMAT},                               \
        {"log-level", required_argument, NULL, SV__OPT_LOG_LEVEL},                                 \
    {                                                                                              \
        "help", no_argument, NULL, SV__OPT_HELP                                                    \
    }

#define SV__COMMON_USAGE                                                                           \
    "Common options:\n"                                                                            \
    "  --dsn DSN             libpq connection string (default: libpq's PG* environment)\n"         \
    "  --plugins-dir DIR     plugin directory (default: " SV_PLUGINDIR ")\n"                       \
    "  --strict-plugins      fail when any plugin is refused\n"                                    \
    "  --log-format FMT      text (default) or json\n"                                             \
    "  --log-level LEVEL     error, warning, info (default) or debug\n"

void sv__common_opts_init(sv__common_opts *o, const char *command);

/* Sets up logging per the common options; call once parsing succeeded. */
void sv__common_opts_apply(const sv__common_opts *o);

/* A command's own option: returns 0, or an exit status after printing why. */
typedef int (*sv__cli_opt_fn)(int c, const char *arg, void *ctx);

/*
 * Runs getopt_long over a command's argv: the common options go to *common, --help prints
 * usage, an unknown flag or a missing value gets one line, the command's own options go to
 * fn(c, arg, ctx). Returns -1 when every option was taken (optind then indexes the first
 * operand), or the exit status the command should return at once.
 */
int sv__cli_parse(int argc, char **argv, const struct option *longopts, const char *usage,
                  sv__common_opts *common, sv__cli_opt_fn fn, void *ctx);

/* Prints "supervisor-worker CMD: message" to stderr and returns SV__EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int sv__usage_error(const char *cmd, const char *fmt, ...);

/* The primary message of a failed result, without "ERROR:" and without newlines. */
const char *sv__pg_error(const PGresult *res);

/* Loads the plugin directory per the common options. NULL (after logging) on failure. */
sv__plugin_host *sv__cli_load_plugins(const sv__common_opts *o);

/* Connects synchronously (CLI commands only; the daemon connects asynchronously). */
PGconn *sv__cli_connect(const sv__common_opts *o);

int sv__cmd_run(int argc, char **argv);
int sv__cmd_migrate(int argc, char **argv);
int sv__cmd_enqueue(int argc, char **argv);
int sv__cmd_jobs(int argc, char **argv);
int sv__cmd_plugins(int argc, char **argv);

#endif
