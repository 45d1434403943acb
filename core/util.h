/* Small helpers shared by the core. */
#ifndef SV_CORE_UTIL_H
#define SV_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SV__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* strdup that aborts on out-of-memory: the daemon cannot do anything useful without it. */
char *sv__xstrdup(const char *s);
void *sv__xcalloc(size_t n, size_t size);
void *sv__xrealloc(void *p, size_t size);

/* Parses a decimal integer in [min, max]; 0 or -EINVAL / -ERANGE, *ret untouched then. */
int sv__parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret);

/*
 * Parses a duration: a number with an optional unit, "ms" (the default), "s", "m" or "h",
 * e.g. "250", "250ms", "1.5s", "2m". Result in milliseconds in [min_ms, max_ms].
 */
int sv__parse_duration_ms(const char *s, int64_t min_ms, int64_t max_ms, int64_t *ret);

/* Monotonic and wall clocks in milliseconds / microseconds. */
uint64_t sv__now_mono_ms(void);
int64_t sv__now_wall_us(void);

/* A growable byte buffer. */
typedef struct sv__buf {
    char *data;
    size_t len, cap;
} sv__buf;
void sv__buf_reserve(sv__buf *b, size_t extra);
void sv__buf_append(sv__buf *b, const char *s, size_t n);
void sv__buf_puts(sv__buf *b, const char *s);
void sv__buf_printf(sv__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sv__buf_clear(sv__buf *b);
void sv__buf_free(sv__buf *b);

#endif
