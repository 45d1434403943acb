/* Unit tests for job.c's job type name rule: 1-128 characters of [A-Za-z0-9_.:-]. */
#include <string.h>

#include "check.h"
#include "job.h"

int main(void)
{
    CHECK(sv__job_type_name_valid("a"));
    CHECK(sv__job_type_name_valid("noop"));
    CHECK(sv__job_type_name_valid("test.sleep"));
    CHECK(sv__job_type_name_valid("Billing:invoice-send_v2.1"));
    CHECK(sv__job_type_name_valid("0123456789"));

    char name[130];
    memset(name, 'x', sizeof name);
    name[128] = '\0';
    CHECK(sv__job_type_name_valid(name)); /* 128 characters: the longest allowed */
    name[128] = 'x';
    name[129] = '\0';
    CHECK(!sv__job_type_name_valid(name)); /* 129 */

    CHECK(!sv__job_type_name_valid(NULL));
    CHECK(!sv__job_type_name_valid(""));
    CHECK(!sv__job_type_name_valid("a b"));
    CHECK(!sv__job_type_name_valid("a/b"));
    CHECK(!sv__job_type_name_valid("a\nb"));
    CHECK(!sv__job_type_name_valid("bad name!"));
    CHECK(!sv__job_type_name_valid("caf\xc3\xa9"));
    CHECK(!sv__job_type_name_valid("a;drop"));
    CHECK(!sv__job_type_name_valid("'quoted'"));
    return check_done("test_job");
}
