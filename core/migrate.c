#include "migrate.h"

int sv__schema_version_latest(void)
{
    return sv__migrations_count > 0 ? sv__migrations[sv__migrations_count - 1].version : 0;
}
