/* supervisor-worker: one binary, subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"

static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"run", sv__cmd_run, "run the supervisor daemon"},
    {"migrate", sv__cmd_migrate, "create or upgrade the database schema"},
    {"enqueue", sv__cmd_enqueue, "add a job to the queue"},
    {"jobs", sv__cmd_jobs, "list, show, retry or cancel jobs"},
    {"plugins", sv__cmd_plugins, "show which plugins would load, and why not"},
};

static void usage(FILE *f)
{
    fputs("Usage: supervisor-worker COMMAND [OPTIONS]\n\nCommands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nRun 'supervisor-worker COMMAND --help' for a command's options.\n", f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return SV__EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return SV__EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("supervisor-worker %s (plugin ABI %d.%d)\n", SV_VERSION, SV_ABI_MAJOR, SV_ABI_MINOR);
        return SV__EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "supervisor-worker: unknown command '%s'\n", name);
    usage(stderr);
    return SV__EXIT_USAGE;
}
