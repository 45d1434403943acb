/* Logging to stderr: text lines (journald priority prefixes under systemd) or JSON lines. */
#ifndef SV_CORE_LOG_H
#define SV_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <supervisor/sdk.h>

typedef enum sv__log_format {
    SV__LOG_FORMAT_TEXT,
    SV__LOG_FORMAT_JSON,
} sv__log_format;

/* What a log line is about; every member may be NULL / 0. */
typedef struct sv__log_context {
    const char *plugin;
    int64_t job_id;
    const char *job_type;
} sv__log_context;

/* Sets the format and the most verbose level written. Call before any thread starts. */
void sv__log_setup(sv__log_format format, int max_level);

/* Parses "error", "warning", "info", "debug"; returns the level or -EINVAL. */
int sv__log_level_parse(const char *name);

bool sv__log_enabled(int level);

/* Writes one line, atomically with respect to other threads. Any thread. */
void sv__log_ctxv(int level, const sv__log_context *ctx, const char *fmt, va_list ap);
SV_PRINTF(3, 4) void sv__log_ctx(int level, const sv__log_context *ctx, const char *fmt, ...);
SV_PRINTF(2, 3) void sv__log(int level, const char *fmt, ...);

#define sv__log_error(...) sv__log(SV_LOG_ERROR, __VA_ARGS__)
#define sv__log_warning(...) sv__log(SV_LOG_WARNING, __VA_ARGS__)
#define sv__log_info(...) sv__log(SV_LOG_INFO, __VA_ARGS__)
#define sv__log_debug(...) sv__log(SV_LOG_DEBUG, __VA_ARGS__)

#endif
