#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <jansson.h>

static sv__log_format log_format = SV__LOG_FORMAT_TEXT;
static int log_max_level = SV_LOG_INFO;
/* Under systemd (JOURNAL_STREAM set) journald adds the time; we add the "<N>" priority. */
static int log_journal = -1;

void sv__log_setup(sv__log_format format, int max_level)
{
    log_format = format;
    log_max_level = max_level;
    log_journal = getenv("JOURNAL_STREAM") != NULL;
}

int sv__log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"error", SV_LOG_ERROR},
        {"warning", SV_LOG_WARNING},
        {"info", SV_LOG_INFO},
        {"debug", SV_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(name, levels[i].name) == 0)
            return levels[i].level;
    return -EINVAL;
}

bool sv__log_enabled(int level)
{
    return level <= log_max_level;
}

static const char *level_name(int level)
{
    switch (level) {
    case SV_LOG_ERROR:
        return "error";
    case SV_LOG_WARNING:
        return "warning";
    case SV_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

static void format_time(char *buf, size_t size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void write_json(int level, const sv__log_context *ctx, const char *msg)
{
    char ts[40];
    format_time(ts, sizeof ts);
    json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_name(level), "msg", msg);
    if (o == NULL)
        return;
    if (ctx != NULL && ctx->plugin != NULL)
        json_object_set_new(o, "plugin", json_string(ctx->plugin));
    if (ctx != NULL && ctx->job_id != 0)
        json_object_set_new(o, "job_id", json_integer(ctx->job_id));
    if (ctx != NULL && ctx->job_type != NULL)
        json_object_set_new(o, "job_type", json_string(ctx->job_type));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(o);
    if (line != NULL) {
        fprintf(stderr, "%s\n", line);
        free(line);
    }
}

static void write_text(int level, const sv__log_context *ctx, const char *msg)
{
    char prefix[256];
    size_t n = 0;
    if (log_journal > 0) {
        n += (size_t)snprintf(prefix, sizeof prefix, "<%d>", level);
    } else {
        char ts[40];
        format_time(ts, sizeof ts);
        n += (size_t)snprintf(prefix, sizeof prefix, "%s %s: ", ts, level_name(level));
    }
    if (ctx != NULL && ctx->plugin != NULL && n < sizeof prefix)
        n += (size_t)snprintf(prefix + n, sizeof prefix - n, "[%s] ", ctx->plugin);
    if (ctx != NULL && ctx->job_id != 0 && n < sizeof prefix)
        n += (size_t)snprintf(prefix + n, sizeof prefix - n,
                              "job %lld (%s): ", (long long)ctx->job_id,
                              ctx->job_type ? ctx->job_type : "?");
    /* One fprintf per line: stdio locks the stream, so lines from threads never interleave. */
    fprintf(stderr, "%s%s\n", prefix, msg);
}

void sv__log_ctxv(int level, const sv__log_context *ctx, const char *fmt, va_list ap)
{
    if (!sv__log_enabled(level))
        return;
    char stackbuf[1024];
    char *msg = stackbuf;
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(stackbuf, sizeof stackbuf, fmt, ap);
    if (len >= (int)sizeof stackbuf) {
        msg = malloc((size_t)len + 1);
        if (msg != NULL)
            vsnprintf(msg, (size_t)len + 1, fmt, ap2);
        else
            msg = stackbuf; /* Truncated is better than nothing. */
    }
    va_end(ap2);
    if (log_format == SV__LOG_FORMAT_JSON)
        write_json(level, ctx, msg);
    else
        write_text(level, ctx, msg);
    if (msg != stackbuf)
        free(msg);
}

void sv__log_ctx(int level, const sv__log_context *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv__log_ctxv(level, ctx, fmt, ap);
    va_end(ap);
}

void sv__log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv__log_ctxv(level, NULL, fmt, ap);
    va_end(ap);
}
