/*
 * The plugin host: loads every *.so of a directory, checks its magic, runs its init and
 * keeps the registry of job types. Loop thread only (at start-up and at shutdown).
 */
#ifndef SV_CORE_PLUGIN_HOST_H
#define SV_CORE_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <supervisor/sdk.h>

/* Defaults applied to a job type's zero members. */
#define SV__DEFAULT_TIMEOUT_MS 60000u
#define SV__DEFAULT_MAX_ATTEMPTS 25u
#define SV__DEFAULT_BACKOFF_BASE_MS 1000u
#define SV__DEFAULT_BACKOFF_MAX_MS 3600000u

/* A registered job type, with the host defaults already filled in. */
typedef struct sv__jobtype {
    char *name;
    sv_handler_fn handler;
    void *userdata;
    uint32_t timeout_ms;
    uint32_t max_attempts;
    uint32_t backoff_base_ms;
    uint32_t backoff_max_ms;
    uint32_t concurrency; /* 0: no limit of its own */
    sv_plugin *plugin;    /* the plugin that registered it */
} sv__jobtype;

/* What became of one file of the plugin directory. */
typedef enum sv__plugin_state {
    SV__PLUGIN_LOADED,
    SV__PLUGIN_REFUSED,
} sv__plugin_state;

typedef struct sv__plugin_host sv__plugin_host;

typedef struct sv__plugin_host_opts {
    bool strict;        /* a refused plugin makes load_dir fail */
    bool skip_security; /* do not check owner and mode (tests, --insecure-plugins) */
} sv__plugin_host_opts;

sv__plugin_host *sv__plugin_host_new(const sv__plugin_host_opts *opts);

/*
 * Loads every regular file named *.so in dir, in name order. Each refusal is logged as one
 * warning line naming the file and the reason, and the others load. Returns 0; -errno when
 * the directory cannot be read (not logged: the caller does), -EACCES when it is insecure
 * (logged, as a refusal of the directory); -EPERM when opts.strict and a file was refused
 * (every plugin is unloaded again in that case, and the records of the files that had
 * loaded say so).
 */
int sv__plugin_host_load_dir(sv__plugin_host *host, const char *dir);

/*
 * Why the last load_dir failed on the directory itself ("No such file or directory",
 * "directory is writable by group (mode 0775)"), or NULL when it did not. Valid until the
 * next load_dir or free.
 */
const char *sv__plugin_host_dir_error(const sv__plugin_host *host);

/* Job types, in registration order. */
size_t sv__plugin_host_type_count(const sv__plugin_host *host);
const sv__jobtype *sv__plugin_host_type_at(const sv__plugin_host *host, size_t i);
const sv__jobtype *sv__plugin_host_find_type(const sv__plugin_host *host, const char *name);

/* One entry per file seen by load_dir, loaded or refused, in name order. */
typedef struct sv__plugin_record {
    const char *path;
    sv__plugin_state state;
    const char *reason;            /* refused: why; NULL when loaded */
    const char *name;              /* from the magic, when it could be read */
    const char *version;           /* from the magic, when it could be read */
    const char *description;       /* from the magic, when it could be read */
    uint16_t abi_major, abi_minor; /* from the magic, when it could be read; else 0 */
    const sv_plugin *plugin;       /* loaded: the plugin (match sv__jobtype.plugin); else NULL */
} sv__plugin_record;

size_t sv__plugin_host_record_count(const sv__plugin_host *host);
const sv__plugin_record *sv__plugin_host_record_at(const sv__plugin_host *host, size_t i);

/* The plugin's name as given by its magic; for log lines. */
const char *sv__plugin_name(const sv_plugin *plugin);

/* Runs every plugin's unload callbacks, dlcloses them and frees the host. Accepts NULL. */
sv__plugin_host *sv__plugin_host_free(sv__plugin_host *host);

/* Host-table entries implemented by the plugin host (see host_api.c). */
int sv__plugin_register_job_type(sv_plugin *plugin, const sv_job_type *type);
void sv__plugin_logv(sv_plugin *plugin, int level, const char *fmt, va_list ap);
void sv__plugin_on_unload(sv_plugin *plugin, void (*fn)(void *), void *userdata);

/* The table handed to every plugin's init. */
extern const sv_host_api sv__host_api;

#endif
