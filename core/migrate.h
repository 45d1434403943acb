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

/* Generated from sql/NNN_name.sql, sorted by version, numbered 1..count without gaps. */
extern const sv__migration sv__migrations[];
extern const size_t sv__migrations_count;

/* The schema version this binary was built for: the highest migration. */
int sv__schema_version_latest(void);

/*
 * Applies every pending migration in order, each in its own transaction, holding an
 * advisory lock so that several hosts may run it at once. Blocking; CLI use only.
 * Returns the number applied (0: already up to date), or a negative errno after logging:
 * -EPROTO when the database's schema is newer than this binary knows.
 */
int sv__migrate(PGconn *conn);

/*
 * Reads the database's schema version into *ret (0 when never migrated). Blocking.
 * Returns 0 or -EIO after logging.
 */
int sv__schema_version_read(PGconn *conn, int *ret);

/*
 * The daemon reads the version without blocking, in two steps, because a statement naming a
 * table that does not exist fails as a whole: first whether sv_migrations exists, then
 * its highest version.
 */
#define SV__SCHEMA_EXISTS_QUERY "SELECT to_regclass('sv_migrations') IS NOT NULL"
#define SV__SCHEMA_VERSION_QUERY "SELECT coalesce(max(version), 0) FROM sv_migrations"

#endif
