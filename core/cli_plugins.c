/*
 * supervisor-worker plugins: loads the plugin directory the way `run` would and says what
 * loaded, what was refused and why, and which job types each plugin registered.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "util.h"

static const char usage_text[] =
    "Usage: supervisor-worker plugins [--json] [OPTIONS]\n"
    "\n"
    "Loads every *.so of the plugin directory as 'run' would, and lists each file: loaded\n"
    "or refused (and why), the plugin's name and version, and the job types it registers\n"
    "with their defaults. Exits 0 when every file loaded, 1 when any was refused or the\n"
    "directory cannot be used, 2 on a usage error. Refusals are also logged to stderr.\n"
    "  --json                print one JSON document instead of text\n"
    "\n" SV__COMMON_USAGE "For this command --log-level defaults to warning: the listing shows\n"
    "what the info lines would say.\n";

/* Formats a duration the way the options take it: "10ms", "1.5s", "1m", "1h". */
static const char *fmt_ms(char *buf, size_t size, uint32_t ms)
{
    if (ms >= 3600000u && ms % 3600000u == 0)
        snprintf(buf, size, "%" PRIu32 "h", ms / 3600000u);
    else if (ms >= 60000u && ms % 60000u == 0)
        snprintf(buf, size, "%" PRIu32 "m", ms / 60000u);
    else if (ms >= 1000u && ms % 1000u == 0)
        snprintf(buf, size, "%" PRIu32 "s", ms / 1000u);
    else
        snprintf(buf, size, "%" PRIu32 "ms", ms);
    return buf;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static void print_type_text(const sv__jobtype *t)
{
    char timeout[32], base[32], max[32], conc[32];
    if (t->concurrency == 0)
        snprintf(conc, sizeof conc, "unlimited");
    else
        snprintf(conc, sizeof conc, "%" PRIu32, t->concurrency);
    printf("    job type %s: timeout %s, max attempts %" PRIu32
           ", backoff %s doubling to %s, concurrency %s\n",
           t->name, fmt_ms(timeout, sizeof timeout, t->timeout_ms), t->max_attempts,
           fmt_ms(base, sizeof base, t->backoff_base_ms),
           fmt_ms(max, sizeof max, t->backoff_max_ms), conc);
}

static void print_text(const sv__plugin_host *host, const char *dir, const char *dir_error,
                       size_t loaded, size_t refused, bool strict)
{
    printf("Plugin directory: %s\n", dir);
    if (dir_error != NULL)
        printf("  cannot be used: %s\n", dir_error);
    else if (sv__plugin_host_record_count(host) == 0)
        printf("  no *.so files\n");
    for (size_t i = 0; i < sv__plugin_host_record_count(host); i++) {
        const sv__plugin_record *rec = sv__plugin_host_record_at(host, i);
        const char *file = base_name(rec->path);
        if (rec->state == SV__PLUGIN_LOADED) {
            printf("  %s: loaded: %s %s", file, rec->name, rec->version ? rec->version : "");
            if (rec->description != NULL && rec->description[0] != '\0')
                printf(" - %s", rec->description);
            putchar('\n');
            for (size_t j = 0; j < sv__plugin_host_type_count(host); j++) {
                const sv__jobtype *t = sv__plugin_host_type_at(host, j);
                if (t->plugin == rec->plugin)
                    print_type_text(t);
            }
        } else {
            printf("  %s: refused", file);
            if (rec->name != NULL)
                printf(" (%s %s)", rec->name, rec->version ? rec->version : "");
            printf(": %s\n", rec->reason != NULL ? rec->reason : "unknown reason");
        }
    }
    printf("Summary: %zu loaded, %zu refused; ", loaded, refused);
    if (dir_error != NULL)
        printf("the daemon would not start\n");
    else if (strict && refused > 0)
        printf("with --strict-plugins the daemon would not start\n");
    else
        printf("the daemon would start with %zu plugin%s\n", loaded, loaded == 1 ? "" : "s");
}

/* A JSON string, or null; plugin strings need not be valid UTF-8, which jansson refuses. */
static json_t *jstr(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    return j != NULL ? j : json_string("(not valid UTF-8)");
}

static void print_json(const sv__plugin_host *host, const char *dir, const char *dir_error,
                       size_t loaded, size_t refused, bool strict)
{
    char abi[32];
    snprintf(abi, sizeof abi, "%d.%d", SV_ABI_MAJOR, SV_ABI_MINOR);
    json_t *plugins = json_array();
    for (size_t i = 0; i < sv__plugin_host_record_count(host); i++) {
        const sv__plugin_record *rec = sv__plugin_host_record_at(host, i);
        json_t *types = json_array();
        for (size_t j = 0; rec->plugin != NULL && j < sv__plugin_host_type_count(host); j++) {
            const sv__jobtype *t = sv__plugin_host_type_at(host, j);
            if (t->plugin != rec->plugin)
                continue;
            json_array_append_new(types,
                                  json_pack("{s:o, s:I, s:I, s:I, s:I, s:I}", "name", jstr(t->name),
                                            "timeout_ms", (json_int_t)t->timeout_ms, "max_attempts",
                                            (json_int_t)t->max_attempts, "backoff_base_ms",
                                            (json_int_t)t->backoff_base_ms, "backoff_max_ms",
                                            (json_int_t)t->backoff_max_ms, "concurrency",
                                            (json_int_t)t->concurrency));
        }
        char pabi[32];
        json_t *jabi = json_null();
        if (rec->abi_major != 0 || rec->abi_minor != 0) {
            snprintf(pabi, sizeof pabi, "%u.%u", rec->abi_major, rec->abi_minor);
            jabi = json_string(pabi);
        }
        json_array_append_new(
            plugins,
            json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "file",
                      jstr(base_name(rec->path)), "path", jstr(rec->path), "state",
                      rec->state == SV__PLUGIN_LOADED ? "loaded" : "refused", "reason",
                      jstr(rec->reason), "name", jstr(rec->name), "version", jstr(rec->version),
                      "description", jstr(rec->description), "abi", jabi, "job_types", types));
    }
    bool would_start = dir_error == NULL && !(strict && refused > 0);
    json_t *doc = json_pack("{s:o, s:s, s:b, s:I, s:I, s:b, s:o, s:o}", "plugins_dir", jstr(dir),
                            "host_abi", abi, "strict", strict, "loaded", (json_int_t)loaded,
                            "refused", (json_int_t)refused, "daemon_would_start", would_start,
                            "error", jstr(dir_error), "plugins", plugins);
    char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text != NULL) {
        puts(text);
        free(text);
    }
    json_decref(doc);
}

enum { OPT_JSON = SV__OPT_FIRST_COMMAND_OPT };

static int plugins_opt(int c, const char *arg, void *ctx)
{
    (void)arg;
    if (c == OPT_JSON)
        *(bool *)ctx = true;
    return 0;
}

int sv__cmd_plugins(int argc, char **argv)
{
    static const struct option longopts[] = {
        SV__COMMON_LONGOPTS,
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    sv__common_opts common;
    sv__common_opts_init(&common, "plugins");
    /* The listing says what loaded; an info line per plugin on stderr would repeat it. */
    common.log_level = SV_LOG_WARNING;
    bool json = false;
    int done = sv__cli_parse(argc, argv, longopts, usage_text, &common, plugins_opt, &json);
    if (done >= 0)
        return done;
    if (optind < argc)
        return sv__usage_error("plugins", "unexpected argument '%s'", argv[optind]);
    sv__common_opts_apply(&common);

    /*
     * Always load leniently, so the listing shows every file's fate; --strict-plugins only
     * changes the verdict on whether the daemon would start.
     */
    sv__plugin_host_opts hopts = {.strict = false};
    sv__plugin_host *host = sv__plugin_host_new(&hopts);
    int r = sv__plugin_host_load_dir(host, common.plugins_dir);
    const char *dir_error = r < 0 ? sv__plugin_host_dir_error(host) : NULL;
    if (r < 0 && dir_error == NULL)
        dir_error = strerror(-r);
    if (r < 0)
        sv__log_error("cannot use plugin directory %s: %s", common.plugins_dir, dir_error);

    size_t loaded = 0, refused = 0;
    for (size_t i = 0; i < sv__plugin_host_record_count(host); i++) {
        if (sv__plugin_host_record_at(host, i)->state == SV__PLUGIN_LOADED)
            loaded++;
        else
            refused++;
    }
    if (json)
        print_json(host, common.plugins_dir, dir_error, loaded, refused, common.strict_plugins);
    else
        print_text(host, common.plugins_dir, dir_error, loaded, refused, common.strict_plugins);
    fflush(stdout);
    if (common.strict_plugins && refused > 0)
        sv__log_error("--strict-plugins: the daemon would refuse to start because %zu plugin "
                      "file%s refused",
                      refused, refused == 1 ? " was" : "s were");

    sv__plugin_host_free(host);
    return dir_error != NULL || refused > 0 ? SV__EXIT_FAILURE : SV__EXIT_OK;
}
