#include "migrate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* pg_advisory_lock key: "svmigrat" as a big-endian integer, unlikely to clash. */
#define MIGRATE_LOCK_KEY "7527384263035249012"

int sv__schema_version_latest(void)
{
    return sv__migrations_count > 0 ? sv__migrations[sv__migrations_count - 1].version : 0;
}

/* Runs a statement; logs and returns false when it fails. */
static bool exec_ok(PGconn *conn, const char *sql, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        const char *msg = PQresultErrorMessage(res);
        sv__log_error("%s failed: %.*s", what, (int)strcspn(msg, "\n"), msg);
    }
    PQclear(res);
    return ok;
}

/* Runs a one-value query; returns its text (PQclear with *res) or NULL after logging. */
static const char *query_value(PGconn *conn, const char *sql, PGresult **res)
{
    *res = PQexec(conn, sql);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK || PQntuples(*res) != 1) {
        const char *msg = PQresultErrorMessage(*res);
        sv__log_error("cannot read the schema version: %.*s", (int)strcspn(msg, "\n"), msg);
        PQclear(*res);
        *res = NULL;
        return NULL;
    }
    return PQgetvalue(*res, 0, 0);
}

int sv__schema_version_read(PGconn *conn, int *ret)
{
    PGresult *res;
    const char *exists = query_value(conn, SV__SCHEMA_EXISTS_QUERY, &res);
    if (exists == NULL)
        return -EIO;
    bool present = strcmp(exists, "t") == 0;
    PQclear(res);
    if (!present) {
        *ret = 0;
        return 0;
    }
    const char *version = query_value(conn, SV__SCHEMA_VERSION_QUERY, &res);
    if (version == NULL)
        return -EIO;
    *ret = atoi(version);
    PQclear(res);
    return 0;
}

static int apply_one(PGconn *conn, const sv__migration *m)
{
    if (!exec_ok(conn, "BEGIN", "BEGIN"))
        return -EIO;
    if (!exec_ok(conn, m->sql, m->name)) {
        exec_ok(conn, "ROLLBACK", "ROLLBACK");
        return -EIO;
    }
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[2] = {version, m->name};
    PGresult *res = PQexecParams(conn, "INSERT INTO sv_migrations (version, name) VALUES ($1, $2)",
                                 2, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        const char *msg = PQresultErrorMessage(res);
        sv__log_error("recording %s failed: %.*s", m->name, (int)strcspn(msg, "\n"), msg);
    }
    PQclear(res);
    if (!ok || !exec_ok(conn, "COMMIT", "COMMIT")) {
        exec_ok(conn, "ROLLBACK", "ROLLBACK");
        return -EIO;
    }
    sv__log_info("applied migration %s", m->name);
    return 0;
}

int sv__migrate(PGconn *conn)
{
    /* Quiet "relation already exists, skipping" notices from IF NOT EXISTS. */
    if (!exec_ok(conn, "SET client_min_messages = warning", "SET"))
        return -EIO;
    if (!exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the lock"))
        return -EIO;
    int r = 0;
    if (!exec_ok(conn,
                 "CREATE TABLE IF NOT EXISTS sv_migrations ("
                 " version integer PRIMARY KEY,"
                 " name text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating sv_migrations")) {
        r = -EIO;
        goto out;
    }
    int current = 0;
    r = sv__schema_version_read(conn, &current);
    if (r < 0)
        goto out;
    int latest = sv__schema_version_latest();
    if (current > latest) {
        sv__log_error("the database schema is at version %d, newer than this binary knows "
                      "(%d); upgrade supervisor-worker instead",
                      current, latest);
        r = -EPROTO;
        goto out;
    }
    int applied = 0;
    for (size_t i = 0; i < sv__migrations_count; i++) {
        if (sv__migrations[i].version <= current)
            continue;
        r = apply_one(conn, &sv__migrations[i]);
        if (r < 0)
            goto out;
        applied++;
    }
    r = applied;
out:
    exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "releasing the lock");
    return r;
}
