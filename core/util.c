#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(void)
{
    fputs("supervisor-worker: out of memory\n", stderr);
    abort();
}

char *sv__xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *p = strdup(s);
    if (p == NULL)
        oom();
    return p;
}

void *sv__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *sv__xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom();
    return q;
}

int sv__parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
    /* Plain decimal only: no spaces, no '+', no hex. */
    if (s == NULL || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

int sv__parse_duration_ms(const char *s, int64_t min_ms, int64_t max_ms, int64_t *ret)
{
    /* Digits with an optional fraction, then the unit: no sign, hex or exponent. */
    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return -EINVAL;
    size_t digits = strspn(s, "0123456789.");
    if (strchr(s + digits, '.') != NULL || (s[digits] != '\0' && strchr("mhs", s[digits]) == NULL))
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(v) || v < 0)
        return -EINVAL;
    double scale;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "s") == 0)
        scale = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        scale = 60000;
    else if (strcmp(end, "h") == 0)
        scale = 3600000;
    else
        return -EINVAL;
    double ms = v * scale;
    if (ms < (double)min_ms || ms > (double)max_ms)
        return -ERANGE;
    *ret = (int64_t)llround(ms);
    return 0;
}

uint64_t sv__now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t sv__now_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sv__buf_reserve(sv__buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = sv__xrealloc(b->data, cap);
    b->cap = cap;
}

void sv__buf_append(sv__buf *b, const char *s, size_t n)
{
    sv__buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sv__buf_puts(sv__buf *b, const char *s)
{
    sv__buf_append(b, s, strlen(s));
}

void sv__buf_printf(sv__buf *b, const char *fmt, ...)
{
    /* Format into the free space; grow and format again only when it did not fit. */
    sv__buf_reserve(b, 64);
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= room) {
        sv__buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0)
        b->len += (size_t)n;
    b->data[b->len] = '\0';
}

void sv__buf_clear(sv__buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sv__buf_free(sv__buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
