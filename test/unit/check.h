/* A minimal check macro for the unit tests: report every failure, exit non-zero at the end. */
#ifndef SV_TEST_CHECK_H
#define SV_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

/* Checks that s is not NULL and contains sub; prints s when it does not. */
#define CHECK_CONTAINS(s, sub)                                                                     \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        if (s_ == NULL || strstr(s_, (sub)) == NULL) {                                             \
            fprintf(stderr, "%s:%d: check failed: \"%s\" does not contain \"%s\"\n", __FILE__,     \
                    __LINE__, s_ != NULL ? s_ : "(null)", (sub));                                  \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

static inline int check_done(const char *name)
{
    if (check_failures > 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    fprintf(stderr, "%s: all checks passed\n", name);
    return 0;
}

#endif
