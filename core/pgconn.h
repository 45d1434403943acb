/*
 * One PostgreSQL connection driven by the libuv loop: libpq in non-blocking pipeline mode,
 * watched with uv_poll on PQsocket. Commands are queued, sent at once and answered in
 * order; each is its own transaction (a sync point follows every command), so one failing
 * command never aborts another. Loss of the connection fails every pending command (its
 * callback gets NULL) and starts reconnecting with capped, jittered backoff.
 *
 * Loop thread only.
 */
#ifndef SV_CORE_PGCONN_H
#define SV_CORE_PGCONN_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

typedef struct sv__pg sv__pg;

/*
 * A command's answer: res is its result (OK or error; owned by sv__pg and cleared after the
 * callback returns) or NULL when the connection was lost before the answer arrived (the
 * command may or may not have been committed).
 */
typedef void (*sv__pg_result_cb)(sv__pg *pg, const PGresult *res, void *data);

typedef struct sv__pg_callbacks {
    /* The connection is up (prepared statements and LISTENs already queued) or lost. */
    void (*up)(sv__pg *pg, void *data);
    void (*down)(sv__pg *pg, const char *reason, void *data);
    /* A NOTIFY arrived on a LISTENed channel. */
    void (*notify)(sv__pg *pg, const char *channel, const char *payload, void *data);
} sv__pg_callbacks;

/*
 * Creates the connection object; nothing happens until sv__pg_start(). conninfo is copied.
 * name appears in log lines ("claims", "outcomes").
 */
sv__pg *sv__pg_new(uv_loop_t *loop, const char *conninfo, const char *name,
                   const sv__pg_callbacks *cb, void *data);

/*
 * A statement prepared on every (re)connect, before any other command, and at once when
 * the connection is up. Copied.
 */
void sv__pg_add_prepared(sv__pg *pg, const char *stmt_name, const char *sql);
/* A session statement (e.g. SET) run first on every (re)connect, in order. Copied. */
void sv__pg_add_setup(sv__pg *pg, const char *sql);
/* A channel LISTENed on every (re)connect. Copied. */
void sv__pg_add_listen(sv__pg *pg, const char *channel);

/* Begins connecting; reconnects by itself after every loss until sv__pg_close(). */
void sv__pg_start(sv__pg *pg);

bool sv__pg_is_up(const sv__pg *pg);

/* Commands queued and not answered yet. */
unsigned sv__pg_pending(const sv__pg *pg);

/*
 * Queues a command: a prepared statement by name (prepared = true) or SQL text. Parameters
 * are text; values are copied by libpq at once. Returns 0, or -ENOTCONN when the
 * connection is not up (cb is then never called).
 */
int sv__pg_send(sv__pg *pg, bool prepared, const char *stmt, int nparams, const char *const *values,
                sv__pg_result_cb cb, void *data);

/* Drops the connection as if it had been lost (e.g. a query went unanswered too long). */
void sv__pg_reset(sv__pg *pg, const char *why);

/*
 * Closes the connection: pending callbacks get NULL, the uv handles are closed and the
 * object is freed once libuv has released them. Accepts NULL.
 */
void sv__pg_close(sv__pg *pg);

/* Backoff bounds for reconnects, in milliseconds (defaults 100 and 10000). */
void sv__pg_set_backoff(sv__pg *pg, uint64_t min_ms, uint64_t max_ms);

#endif
