/*
 * supervisor-worker plugin SDK.
 *
 * This is the only public interface of supervisor-worker. A plugin is a shared object that
 * the daemon loads with dlopen(RTLD_NOW | RTLD_LOCAL) at start-up. It exports exactly two
 * functions, both defined for you by SV_PLUGIN_DEFINE():
 *
 *   sv_plugin_magic()  returns a size-prefixed description of the plugin and of the SDK ABI
 *                      it was built against. The host checks it before anything else and
 *                      refuses a plugin whose ABI major differs from its own or whose minor
 *                      is newer than its own.
 *   sv_plugin_init()   receives the host's function table and the plugin's handle; the
 *                      plugin registers its job types from here.
 *
 * Plugins never link against the daemon: every call into the host goes through the table of
 * function pointers handed to sv_plugin_init(). The static inline wrappers below (sv_log,
 * sv_job_id, ...) hide that table; SV_PLUGIN_DEFINE() stores it in a hidden global.
 *
 * Threads. The host runs an event loop on one thread (the "loop thread") and runs job
 * handlers on a pool of worker threads. Each function below says which thread may call it.
 *
 * Ownership. Each function says who owns what it takes and returns. jansson values follow
 * jansson's own vocabulary: a "borrowed" reference must not be decref'd and is valid only
 * for the stated time; a "stolen" reference passes ownership to the callee.
 *
 * Compatibility. Within one ABI major, structs and the host table only grow at their end.
 * Every struct starts with uint32_t struct_size; set it with sizeof, and the host reads
 * only the members it knows. A plugin built for 1.N loads in any host that speaks 1.M with
 * M >= N.
 */
#ifndef SUPERVISOR_SDK_H
#define SUPERVISOR_SDK_H

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SV_ABI_MAJOR 1
#define SV_ABI_MINOR 0

#if defined(__GNUC__) || defined(__clang__)
#define SV_EXPORT __attribute__((visibility("default")))
#define SV_HIDDEN __attribute__((visibility("hidden")))
#define SV_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SV_EXPORT
#define SV_HIDDEN
#define SV_PRINTF(fmt, args)
#endif

/* Names of the two symbols a plugin exports. */
#define SV_PLUGIN_MAGIC_SYMBOL "sv_plugin_magic"
#define SV_PLUGIN_INIT_SYMBOL "sv_plugin_init"

/* Opaque handles. The host owns both; a plugin only ever holds pointers to them. */
typedef struct sv_plugin sv_plugin;
typedef struct sv_job sv_job;

/* Log levels; the numbers are syslog's, so journald can show them as priorities. */
typedef enum sv_log_level {
    SV_LOG_ERROR = 3,
    SV_LOG_WARNING = 4,
    SV_LOG_INFO = 6,
    SV_LOG_DEBUG = 7,
} sv_log_level;

/* What a handler returns. Use the helpers sv_job_retry() and sv_job_fail(), which also
 * record a message; returning SV_RETRY or SV_FAIL bare records a generic one. */
typedef enum sv_status {
    SV_OK = 0,    /* The job succeeded. */
    SV_RETRY = 1, /* This attempt failed; run again after a delay, if attempts remain. */
    SV_FAIL = 2,  /* The job failed permanently; no further attempt is made. */
} sv_status;

/*
 * A job handler. Called on a pool thread, once per attempt, with the job handle (valid until
 * the handler returns) and the userdata given at registration. It may block; it should call
 * sv_job_cancelled() now and then during long work and return soon after it turns true
 * (the job timed out or the daemon is shutting down).
 */
typedef sv_status (*sv_handler_fn)(sv_job *job, void *userdata);

/* The plugin's description, returned by sv_plugin_magic(). Static storage, never freed. */
typedef struct sv_plugin_info {
    uint32_t struct_size; /* sizeof(sv_plugin_info) */
    uint16_t abi_major;   /* SV_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /* SV_ABI_MINOR the plugin was built with */
    const char *name;     /* short name, e.g. "noop" */
    const char *version;  /* the plugin's own version, e.g. "1.2.0" */
    const char *description;
    void *reserved[4];
} sv_plugin_info;

/*
 * A job type, passed to sv_register_job_type(). The host copies every member, so the struct
 * and its strings may live on the stack. Zero means "use the host's default" for the
 * numeric members (see docs/plugins.md for the defaults).
 */
typedef struct sv_job_type {
    uint32_t struct_size;     /* sizeof(sv_job_type) */
    const char *name;         /* job type name, unique across all plugins; [A-Za-z0-9_.:-] */
    sv_handler_fn handler;    /* required */
    void *userdata;           /* passed to every call of handler; owned by the plugin */
    uint32_t timeout_ms;      /* default per-attempt timeout; a job may override it */
    uint32_t max_attempts;    /* default attempts before the job is dead; a job may override */
    uint32_t backoff_base_ms; /* retry delay after the first failure; doubles each attempt */
    uint32_t backoff_max_ms;  /* cap on the retry delay */
    uint32_t concurrency;     /* at most this many of this type at once per daemon; 0: no limit */
    void *reserved[4];
} sv_job_type;

/* Options for sv_job_enqueue(); a NULL pointer means all defaults. */
typedef struct sv_enqueue_opts {
    uint32_t struct_size;   /* sizeof(sv_enqueue_opts) */
    const char *queue;      /* NULL: "default" */
    int32_t priority;       /* smaller runs first; 0 is the default */
    int64_t delay_ms;       /* run no earlier than this long after the enqueue commits */
    uint32_t max_attempts;  /* 0: the job type's default */
    uint32_t timeout_ms;    /* 0: the job type's default */
    const char *unique_key; /* NULL: not unique */
    void *reserved[4];
} sv_enqueue_opts;

/*
 * The host's function table, handed to sv_plugin_init(). Valid until the plugin is unloaded.
 * Call through the inline wrappers below rather than directly; a wrapper for a member added
 * in a later minor checks struct_size first (SV_HOST_HAS).
 */
typedef struct sv_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *host_version;

    int (*register_job_type)(sv_plugin *plugin, const sv_job_type *type);
    void (*plugin_logv)(sv_plugin *plugin, int level, const char *fmt, va_list ap);
    void (*plugin_on_unload)(sv_plugin *plugin, void (*fn)(void *userdata), void *userdata);

    int64_t (*job_id)(const sv_job *job);
    const char *(*job_type)(const sv_job *job);
    const char *(*job_queue)(const sv_job *job);
    uint32_t (*job_attempt)(const sv_job *job);
    uint32_t (*job_max_attempts)(const sv_job *job);
    json_t *(*job_payload)(const sv_job *job);
    void (*job_logv)(sv_job *job, int level, const char *fmt, va_list ap);
    bool (*job_cancelled)(const sv_job *job);
    void (*job_set_progress)(sv_job *job, double fraction, const char *message);
    void (*job_set_result)(sv_job *job, json_t *result);
    sv_status (*job_finishv)(sv_job *job, sv_status status, int64_t retry_delay_ms, const char *fmt,
                             va_list ap);
    int (*job_enqueue)(sv_job *job, const char *type, json_t *payload, const sv_enqueue_opts *opts);
} sv_host_api;

/* The two exported entry points. Define them with SV_PLUGIN_DEFINE(), not by hand. */
SV_EXPORT const sv_plugin_info *sv_plugin_magic(void);
SV_EXPORT int sv_plugin_init(sv_plugin *plugin, const sv_host_api *host);

/* The host table as seen from the plugin; set by SV_PLUGIN_DEFINE()'s sv_plugin_init(). */
extern const sv_host_api *sv__host SV_HIDDEN;

/* True when the host's table has member m (it may be older than this header). */
#define SV_HOST_HAS(m) (sv__host->struct_size >= offsetof(sv_host_api, m) + sizeof(sv__host->m))

/*
 * Defines the plugin's two exported functions. Use once per plugin, in one source file:
 *
 *     static int my_init(sv_plugin *plugin) { ... register job types ...; return 0; }
 *     SV_PLUGIN_DEFINE("myplugin", "1.0.0", "What it does", my_init)
 *
 * init_fn runs on the loop thread, once, at start-up. It returns 0, or a negative errno
 * value after logging why with sv_log(); on failure the host undoes every registration the
 * plugin made and unloads it.
 */
#define SV_PLUGIN_DEFINE(name_, version_, description_, init_fn_)                                  \
    const sv_host_api *sv__host;                                                                   \
    SV_EXPORT const sv_plugin_info *sv_plugin_magic(void)                                          \
    {                                                                                              \
        static const sv_plugin_info info = {sizeof(sv_plugin_info),                                \
                                            SV_ABI_MAJOR,                                          \
                                            SV_ABI_MINOR,                                          \
                                            (name_),                                               \
                                            (version_),                                            \
                                            (description_),                                        \
                                            {NULL, NULL, NULL, NULL}};                             \
        return &info;                                                                              \
    }                                                                                              \
    SV_EXPORT int sv_plugin_init(sv_plugin *plugin, const sv_host_api *host)                       \
    {                                                                                              \
        sv__host = host;                                                                           \
        return (init_fn_)(plugin);                                                                 \
    }

/* ---- Plugin functions: loop thread, from init_fn only (sv_log: any thread). ---- */

/*
 * Registers a job type for this plugin. Copies *type and its strings. Returns 0, -EINVAL
 * for a missing name or handler or a bad name, or -EEXIST when another plugin (or this one)
 * already registered the name; the host logs which plugins collided.
 */
static inline int sv_register_job_type(sv_plugin *plugin, const sv_job_type *type)
{
    return sv__host->register_job_type(plugin, type);
}

/* Logs a line tagged with the plugin's name. Any thread. */
static inline SV_PRINTF(3, 4) void sv_log(sv_plugin *plugin, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv__host->plugin_logv(plugin, level, fmt, ap);
    va_end(ap);
}

/*
 * Asks the host to call fn(userdata) on the loop thread when the plugin is unloaded (at
 * shutdown, after every handler has returned), to free what init allocated. Several may be
 * registered; they run in reverse order.
 */
static inline void sv_plugin_on_unload(sv_plugin *plugin, void (*fn)(void *), void *userdata)
{
    sv__host->plugin_on_unload(plugin, fn, userdata);
}

/* ---- Job functions: the handler's own thread, during the handler call only. ---- */

/* The job's id, unique and stable across attempts: use it as an idempotency key. */
static inline int64_t sv_job_id(const sv_job *job)
{
    return sv__host->job_id(job);
}

/* The job's type name. Borrowed; valid until the handler returns. */
static inline const char *sv_job_type_name(const sv_job *job)
{
    return sv__host->job_type(job);
}

/* The job's queue name. Borrowed; valid until the handler returns. */
static inline const char *sv_job_queue(const sv_job *job)
{
    return sv__host->job_queue(job);
}

/* This attempt's number, 1 for the first run. */
static inline uint32_t sv_job_attempt(const sv_job *job)
{
    return sv__host->job_attempt(job);
}

/* The number of attempts after which a failing job is dead. */
static inline uint32_t sv_job_max_attempts(const sv_job *job)
{
    return sv__host->job_max_attempts(job);
}

/*
 * The job's payload (any JSON value, an object by convention). Borrowed: do not decref or
 * modify it; it is valid until the handler returns. json_incref() it to keep it longer.
 */
static inline json_t *sv_job_payload(const sv_job *job)
{
    return sv__host->job_payload(job);
}

/* Logs a line tagged with the plugin's name and the job's id and type. */
static inline SV_PRINTF(3, 4) void sv_job_log(sv_job *job, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv__host->job_logv(job, level, fmt, ap);
    va_end(ap);
}

/*
 * True once the attempt should stop: its timeout passed or the daemon is shutting down and
 * its grace period ran out. Cheap (one atomic load); call it as often as you like. After it
 * turns true, whatever the handler returns is ignored: the host has already decided the
 * attempt's fate.
 */
static inline bool sv_job_cancelled(const sv_job *job)
{
    return sv__host->job_cancelled(job);
}

/*
 * Reports progress: fraction in [0, 1] (clamped) and an optional message (copied; may be
 * NULL). The host writes the latest value to the job's row with its next heartbeat, and
 * the last one with the job's success. Any thread, while the handler runs.
 */
static inline void sv_job_set_progress(sv_job *job, double fraction, const char *message)
{
    sv__host->job_set_progress(job, fraction, message);
}

/*
 * Sets the job's result, stored in its row when the attempt succeeds. Steals the reference
 * to result (NULL clears it); a second call replaces the first.
 */
static inline void sv_job_set_result(sv_job *job, json_t *result)
{
    sv__host->job_set_result(job, result);
}

/*
 * Ends the attempt as failed and retryable, with a message (printf format) kept in the job's
 * error list. delay_ms < 0 uses the job type's exponential backoff; otherwise the next
 * attempt runs no earlier than delay_ms from now. Returns SV_RETRY: `return
 * sv_job_retry(job, -1, "upstream said %d", code);`. When no attempts remain the job is dead.
 */
static inline SV_PRINTF(3, 4) sv_status
    sv_job_retry(sv_job *job, int64_t delay_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv_status s = sv__host->job_finishv(job, SV_RETRY, delay_ms, fmt, ap);
    va_end(ap);
    return s;
}

/*
 * Ends the attempt as a permanent failure (the job becomes dead at once), with a message
 * (printf format) kept in the job's error list. Returns SV_FAIL.
 */
static inline SV_PRINTF(2, 3) sv_status sv_job_fail(sv_job *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv_status s = sv__host->job_finishv(job, SV_FAIL, -1, fmt, ap);
    va_end(ap);
    return s;
}

/*
 * Enqueues a follow-up job. It is inserted in the same transaction that records this job's
 * success, so it exists exactly when this job succeeded; if this attempt fails it is
 * discarded. Steals the reference to payload (NULL means {}). Copies type and opts. Returns
 * 0, or -EINVAL for a missing or bad type name.
 */
static inline int sv_job_enqueue(sv_job *job, const char *type, json_t *payload,
                                 const sv_enqueue_opts *opts)
{
    return sv__host->job_enqueue(job, type, payload, opts);
}

#ifdef __cplusplus
}
#endif

#endif /* SUPERVISOR_SDK_H */
