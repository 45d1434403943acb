/* The schema migrations, embedded from sql/ at build time, and the code applying them. */
#ifndef SV_CORE_MIGRATE_H
#define SV_CORE_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

typedef struct sv__migration {
    int version;
    const char *name;
    const char *sql;
} sv__migration;

extern const sv__migration sv__migrations[];
extern const size_t sv__migrations_count;

/* The schema version this binary was built for: the highest migration. */
int sv__schema_version_latest(void);

#endif
