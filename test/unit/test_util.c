/* Unit tests for util.c's parsers. */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "util.h"

static void test_parse_int64(void)
{
    int64_t v = -1;
    CHECK(sv__parse_int64("42", 0, 100, &v) == 0 && v == 42);
    CHECK(sv__parse_int64("-5", -10, 10, &v) == 0 && v == -5);
    CHECK(sv__parse_int64("0", 0, 0, &v) == 0 && v == 0);
    CHECK(sv__parse_int64("9223372036854775807", INT64_MIN, INT64_MAX, &v) == 0 && v == INT64_MAX);
    CHECK(sv__parse_int64("-9223372036854775808", INT64_MIN, INT64_MAX, &v) == 0 && v == INT64_MIN);

    /* Errors leave *ret untouched. */
    v = 7;
    CHECK(sv__parse_int64("", 0, 100, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_int64(NULL, 0, 100, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_int64("12a", 0, 100, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_int64("1.5", 0, 100, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_int64("abc", 0, 100, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_int64("101", 0, 100, &v) == -ERANGE && v == 7);
    CHECK(sv__parse_int64("-1", 0, 100, &v) == -ERANGE && v == 7);
    CHECK(sv__parse_int64("9223372036854775808", INT64_MIN, INT64_MAX, &v) == -ERANGE && v == 7);
    CHECK(sv__parse_int64("99999999999999999999", 0, INT64_MAX, &v) == -ERANGE && v == 7);
}

static void test_parse_duration(void)
{
    int64_t v = -1;
    CHECK(sv__parse_duration_ms("250", 0, INT64_MAX, &v) == 0 && v == 250);
    CHECK(sv__parse_duration_ms("250ms", 0, INT64_MAX, &v) == 0 && v == 250);
    CHECK(sv__parse_duration_ms("1.5s", 0, INT64_MAX, &v) == 0 && v == 1500);
    CHECK(sv__parse_duration_ms("30s", 0, INT64_MAX, &v) == 0 && v == 30000);
    CHECK(sv__parse_duration_ms("2m", 0, INT64_MAX, &v) == 0 && v == 120000);
    CHECK(sv__parse_duration_ms("2min", 0, INT64_MAX, &v) == 0 && v == 120000);
    CHECK(sv__parse_duration_ms("1h", 0, INT64_MAX, &v) == 0 && v == 3600000);
    CHECK(sv__parse_duration_ms("0", 0, INT64_MAX, &v) == 0 && v == 0);
    CHECK(sv__parse_duration_ms("0.0004s", 0, INT64_MAX, &v) == 0 && v == 0);
    CHECK(sv__parse_duration_ms("0.0006s", 0, INT64_MAX, &v) == 0 && v == 1);

    /* Errors leave *ret untouched. */
    v = 7;
    CHECK(sv__parse_duration_ms("", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms(NULL, 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("s", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("ms", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("5x", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("5 s", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("5sec", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("-1", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("-1s", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("nan", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("inf", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("1e999", 0, INT64_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("0", 1, INT32_MAX, &v) == -ERANGE && v == 7);
    CHECK(sv__parse_duration_ms("25d", 0, INT32_MAX, &v) == -EINVAL && v == 7);
    CHECK(sv__parse_duration_ms("597h", 0, INT32_MAX, &v) == -ERANGE && v == 7);
    CHECK(sv__parse_duration_ms("2s", 0, 1999, &v) == -ERANGE && v == 7);
}

int main(void)
{
    test_parse_int64();
    test_parse_duration();
    return check_done("test_util");
}
