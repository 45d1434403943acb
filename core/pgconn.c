#include "pgconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* A connection attempt that has not completed after this long is abandoned and retried. */
#define CONNECT_TIMEOUT_MS 10000

typedef struct pg_cmd {
    sv__pg_result_cb cb; /* NULL: an internal command; errors are logged */
    void *data;
    PGresult *res;
    struct pg_cmd *next;
} pg_cmd;

typedef enum pg_state {
    PG_DOWN,
    PG_CONNECTING,
    PG_UP,
    PG_CLOSED,
} pg_state;

struct sv__pg {
    uv_loop_t *loop;
    char *conninfo;
    char *name;
    sv__pg_callbacks cb;
    void *data;

    pg_state state;
    PGconn *conn;
    uv_poll_t *poll; /* watches PQsocket; replaced when the socket changes */
    int poll_fd;
    int poll_events;
    uv_timer_t timer; /* reconnect delay, connect timeout, deferred loss */
    uint64_t backoff_min_ms, backoff_max_ms;
    unsigned failures;
    bool was_up; /* for "reconnected" vs "connected" */
    char *pending_loss;

    pg_cmd *head, *tail;
    unsigned npending;

    char **prep_names, **prep_sql;
    size_t nprep;
    char **setup; /* session statements run first on every connect: SET, LISTEN */
    size_t nsetup;

    int open_handles; /* freed when the last one is closed after sv__pg_close */
};

static void connect_begin(sv__pg *pg);
static void on_poll(uv_poll_t *handle, int status, int events);

/* libpq messages end with a newline and may hold several lines; keep the first. */
static char *first_line(const char *msg)
{
    if (msg == NULL || *msg == '\0')
        return sv__xstrdup("unknown error");
    size_t n = strcspn(msg, "\n");
    char *s = sv__xcalloc(1, n + 1);
    memcpy(s, msg, n);
    return s;
}

static void maybe_free(sv__pg *pg)
{
    if (pg->state != PG_CLOSED || pg->open_handles > 0)
        return;
    free(pg->conninfo);
    free(pg->name);
    for (size_t i = 0; i < pg->nprep; i++) {
        free(pg->prep_names[i]);
        free(pg->prep_sql[i]);
    }
    free(pg->prep_names);
    free(pg->prep_sql);
    for (size_t i = 0; i < pg->nsetup; i++)
        free(pg->setup[i]);
    free(pg->setup);
    free(pg->pending_loss);
    free(pg);
}

static void on_handle_closed(uv_handle_t *handle)
{
    sv__pg *pg = handle->data;
    if (handle != (uv_handle_t *)&pg->timer)
        free(handle);
    pg->open_handles--;
    maybe_free(pg);
}

static void unwatch(sv__pg *pg)
{
    if (pg->poll == NULL)
        return;
    /* uv_poll_stop removes the fd from epoll at once, so the socket may be closed next. */
    uv_poll_stop(pg->poll);
    uv_close((uv_handle_t *)pg->poll, on_handle_closed);
    pg->poll = NULL;
    pg->poll_fd = -1;
    pg->poll_events = 0;
}

/* Watches the connection's socket for events; returns false when it cannot. */
static bool watch(sv__pg *pg, int events)
{
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return false;
    if (pg->poll != NULL && pg->poll_fd != fd)
        unwatch(pg);
    if (pg->poll == NULL) {
        pg->poll = sv__xcalloc(1, sizeof *pg->poll);
        if (uv_poll_init(pg->loop, pg->poll, fd) < 0) {
            free(pg->poll);
            pg->poll = NULL;
            return false;
        }
        pg->poll->data = pg;
        pg->open_handles++;
        pg->poll_fd = fd;
    }
    if (pg->poll_events != events) {
        if (uv_poll_start(pg->poll, events, on_poll) < 0)
            return false;
        pg->poll_events = events;
    }
    return true;
}

static void fail_pending(sv__pg *pg)
{
    /* Detach the list first: callbacks may queue new commands (which fail at once). */
    pg_cmd *c = pg->head;
    pg->head = pg->tail = NULL;
    pg->npending = 0;
    while (c != NULL) {
        pg_cmd *next = c->next;
        if (c->cb != NULL)
            c->cb(pg, NULL, c->data);
        PQclear(c->res);
        free(c);
        c = next;
    }
}

static void on_timer(uv_timer_t *timer);

static void schedule_reconnect(sv__pg *pg)
{
    uint64_t delay = pg->backoff_min_ms;
    for (unsigned i = 0; i < pg->failures && delay < pg->backoff_max_ms; i++)
        delay *= 2;
    if (delay > pg->backoff_max_ms)
        delay = pg->backoff_max_ms;
    /* Equal jitter: half fixed, half random, so a fleet does not reconnect in lockstep. */
    delay = delay / 2 + (uint64_t)rand() % (delay / 2 + 1);
    pg->failures++;
    uv_timer_start(&pg->timer, on_timer, delay, 0);
}

/* The connection failed or was lost: fail pending commands, report, retry later. */
static void lost(sv__pg *pg, const char *why)
{
    if (pg->state == PG_CLOSED || pg->state == PG_DOWN)
        return;
    char *reason = first_line(why);
    bool was_up = pg->state == PG_UP;
    uv_timer_stop(&pg->timer);
    unwatch(pg);
    PQfinish(pg->conn);
    pg->conn = NULL;
    pg->state = PG_DOWN;
    schedule_reconnect(pg);
    if (was_up)
        sv__log_warning("database connection (%s) lost: %s; reconnecting", pg->name, reason);
    else if (pg->failures <= 1 || sv__log_enabled(SV_LOG_DEBUG) || pg->failures % 10 == 0)
        sv__log_warning("cannot connect to the database (%s): %s; retrying (attempt %u)", pg->name,
                        reason, pg->failures);
    fail_pending(pg);
    if (was_up && pg->cb.down != NULL)
        pg->cb.down(pg, reason, pg->data);
    free(reason);
}

static void on_timer(uv_timer_t *timer)
{
    sv__pg *pg = timer->data;
    if (pg->pending_loss != NULL) {
        char *why = pg->pending_loss;
        pg->pending_loss = NULL;
        lost(pg, why);
        free(why);
    } else if (pg->state == PG_CONNECTING) {
        lost(pg, "connection attempt timed out");
    } else if (pg->state == PG_DOWN) {
        connect_begin(pg);
    }
}

/* Reports a loss from a place where callbacks must not run yet (inside sv__pg_send). */
static void defer_loss(sv__pg *pg, const char *why)
{
    if (pg->pending_loss == NULL)
        pg->pending_loss = first_line(why);
    uv_timer_start(&pg->timer, on_timer, 0, 0);
}

static void flush(sv__pg *pg)
{
    int r = PQflush(pg->conn);
    if (r < 0) {
        lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (!watch(pg, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE))
        lost(pg, "cannot watch the connection's socket");
}

static void queue_cmd(sv__pg *pg, sv__pg_result_cb cb, void *data)
{
    pg_cmd *c = sv__xcalloc(1, sizeof *c);
    c->cb = cb;
    c->data = data;
    if (pg->tail != NULL)
        pg->tail->next = c;
    else
        pg->head = c;
    pg->tail = c;
    pg->npending++;
}

static void on_connected(sv__pg *pg)
{
    uv_timer_stop(&pg->timer);
    if (PQenterPipelineMode(pg->conn) != 1) {
        lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->state = PG_UP;
    pg->failures = 0;
    sv__log_info("database connection (%s) %s", pg->name,
                 pg->was_up ? "re-established" : "established");
    pg->was_up = true;
    for (size_t i = 0; i < pg->nsetup; i++) {
        if (!PQsendQueryParams(pg->conn, pg->setup[i], 0, NULL, NULL, NULL, NULL, 0) ||
            !PQpipelineSync(pg->conn)) {
            lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        queue_cmd(pg, NULL, pg->setup[i]);
    }
    for (size_t i = 0; i < pg->nprep; i++) {
        if (!PQsendPrepare(pg->conn, pg->prep_names[i], pg->prep_sql[i], 0, NULL) ||
            !PQpipelineSync(pg->conn)) {
            lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        queue_cmd(pg, NULL, pg->prep_names[i]);
    }
    flush(pg);
    if (pg->state == PG_UP && pg->cb.up != NULL)
        pg->cb.up(pg, pg->data);
}

static void connect_step(sv__pg *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING:
        if (!watch(pg, UV_READABLE))
            lost(pg, "cannot watch the connection's socket");
        break;
    case PGRES_POLLING_WRITING:
        if (!watch(pg, UV_WRITABLE))
            lost(pg, "cannot watch the connection's socket");
        break;
    case PGRES_POLLING_OK:
        on_connected(pg);
        break;
    default:
        lost(pg, PQerrorMessage(pg->conn));
        break;
    }
}

static void connect_begin(sv__pg *pg)
{
    pg->conn = PQconnectStart(pg->conninfo);
    pg->state = PG_CONNECTING;
    if (pg->conn == NULL) {
        lost(pg, "out of memory");
        return;
    }
    if (PQstatus(pg->conn) == CONNECTION_BAD || PQsetnonblocking(pg->conn, 1) != 0) {
        lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    uv_timer_start(&pg->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
    /* libpq's state machine starts as if the socket had become writable. */
    connect_step(pg);
}

static void complete_head(sv__pg *pg)
{
    pg_cmd *c = pg->head;
    pg->head = c->next;
    if (pg->head == NULL)
        pg->tail = NULL;
    pg->npending--;
    if (c->cb != NULL) {
        c->cb(pg, c->res, c->data);
    } else if (c->res != NULL && PQresultStatus(c->res) != PGRES_COMMAND_OK &&
               PQresultStatus(c->res) != PGRES_TUPLES_OK) {
        char *msg = first_line(PQresultErrorMessage(c->res));
        sv__log_error("database connection (%s): setting up %s failed: %s", pg->name,
                      (const char *)c->data, msg);
        free(msg);
    }
    PQclear(c->res);
    free(c);
}

static void read_results(sv__pg *pg)
{
    int empty = 0;
    while (pg->state == PG_UP && pg->head != NULL && !PQisBusy(pg->conn)) {
        PGresult *res = PQgetResult(pg->conn);
        if (res == NULL) {
            /* End of one command's results; two in a row means nothing more is ready. */
            if (++empty > 1)
                break;
            continue;
        }
        empty = 0;
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            complete_head(pg);
            continue;
        }
        if (pg->head->res == NULL)
            pg->head->res = res;
        else
            PQclear(res);
    }
}

static void read_notifies(sv__pg *pg)
{
    PGnotify *n;
    while (pg->state == PG_UP && (n = PQnotifies(pg->conn)) != NULL) {
        if (pg->cb.notify != NULL)
            pg->cb.notify(pg, n->relname, n->extra, pg->data);
        PQfreemem(n);
    }
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    sv__pg *pg = handle->data;
    if (pg->state == PG_CONNECTING) {
        connect_step(pg);
        return;
    }
    if (pg->state != PG_UP)
        return;
    if (status < 0) {
        /* libpq may have seen the failure first and closed the socket: prefer its words. */
        const char *msg = PQerrorMessage(pg->conn);
        lost(pg, msg != NULL && *msg ? msg : uv_strerror(status));
        return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(pg->conn)) {
            lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        read_results(pg);
        read_notifies(pg);
        if (pg->state == PG_UP && PQstatus(pg->conn) == CONNECTION_BAD) {
            lost(pg, PQerrorMessage(pg->conn));
            return;
        }
    }
    if (pg->state == PG_UP)
        flush(pg);
}

sv__pg *sv__pg_new(uv_loop_t *loop, const char *conninfo, const char *name,
                   const sv__pg_callbacks *cb, void *data)
{
    sv__pg *pg = sv__xcalloc(1, sizeof *pg);
    pg->loop = loop;
    pg->conninfo = sv__xstrdup(conninfo != NULL ? conninfo : "");
    pg->name = sv__xstrdup(name);
    if (cb != NULL)
        pg->cb = *cb;
    pg->data = data;
    pg->state = PG_DOWN;
    pg->poll_fd = -1;
    pg->backoff_min_ms = 100;
    pg->backoff_max_ms = 10000;
    uv_timer_init(loop, &pg->timer);
    pg->timer.data = pg;
    pg->open_handles = 1;
    return pg;
}

void sv__pg_add_prepared(sv__pg *pg, const char *stmt_name, const char *sql)
{
    pg->prep_names = sv__xrealloc(pg->prep_names, (pg->nprep + 1) * sizeof(char *));
    pg->prep_sql = sv__xrealloc(pg->prep_sql, (pg->nprep + 1) * sizeof(char *));
    pg->prep_names[pg->nprep] = sv__xstrdup(stmt_name);
    pg->prep_sql[pg->nprep] = sv__xstrdup(sql);
    pg->nprep++;
    /* Already connected: prepare it now too; later connects prepare every one. */
    if (pg->state == PG_UP && pg->pending_loss == NULL) {
        if (!PQsendPrepare(pg->conn, stmt_name, sql, 0, NULL) || !PQpipelineSync(pg->conn)) {
            defer_loss(pg, PQerrorMessage(pg->conn));
            return;
        }
        queue_cmd(pg, NULL, pg->prep_names[pg->nprep - 1]);
        if (PQflush(pg->conn) < 0)
            defer_loss(pg, PQerrorMessage(pg->conn));
        else if (!watch(pg, UV_READABLE | UV_WRITABLE))
            defer_loss(pg, "cannot watch the connection's socket");
    }
}

void sv__pg_add_setup(sv__pg *pg, const char *sql)
{
    pg->setup = sv__xrealloc(pg->setup, (pg->nsetup + 1) * sizeof(char *));
    pg->setup[pg->nsetup++] = sv__xstrdup(sql);
}

void sv__pg_add_listen(sv__pg *pg, const char *channel)
{
    sv__buf sql = {0};
    sv__buf_puts(&sql, "LISTEN \"");
    for (const char *p = channel; *p; p++) {
        sv__buf_append(&sql, p, 1);
        if (*p == '"') /* a quoted identifier doubles its quotes */
            sv__buf_append(&sql, p, 1);
    }
    sv__buf_puts(&sql, "\"");
    sv__pg_add_setup(pg, sql.data);
    sv__buf_free(&sql);
}

void sv__pg_set_backoff(sv__pg *pg, uint64_t min_ms, uint64_t max_ms)
{
    pg->backoff_min_ms = min_ms > 0 ? min_ms : 1;
    pg->backoff_max_ms = max_ms >= pg->backoff_min_ms ? max_ms : pg->backoff_min_ms;
}

void sv__pg_start(sv__pg *pg)
{
    if (pg->state == PG_DOWN)
        connect_begin(pg);
}

bool sv__pg_is_up(const sv__pg *pg)
{
    return pg != NULL && pg->state == PG_UP;
}

unsigned sv__pg_pending(const sv__pg *pg)
{
    return pg->npending;
}

int sv__pg_send(sv__pg *pg, bool prepared, const char *stmt, int nparams, const char *const *values,
                sv__pg_result_cb cb, void *data)
{
    if (pg->state != PG_UP || pg->pending_loss != NULL)
        return -ENOTCONN;
    int ok = prepared ? PQsendQueryPrepared(pg->conn, stmt, nparams, values, NULL, NULL, 0)
                      : PQsendQueryParams(pg->conn, stmt, nparams, NULL, values, NULL, NULL, 0);
    if (!ok || !PQpipelineSync(pg->conn)) {
        defer_loss(pg, PQerrorMessage(pg->conn));
        return -ENOTCONN;
    }
    queue_cmd(pg, cb, data);
    int r = PQflush(pg->conn);
    if (r < 0)
        defer_loss(pg, PQerrorMessage(pg->conn));
    else if (r == 1 && !watch(pg, UV_READABLE | UV_WRITABLE))
        defer_loss(pg, "cannot watch the connection's socket");
    return 0;
}

void sv__pg_reset(sv__pg *pg, const char *why)
{
    if (pg->state == PG_UP || pg->state == PG_CONNECTING)
        lost(pg, why);
}

void sv__pg_close(sv__pg *pg)
{
    if (pg == NULL || pg->state == PG_CLOSED)
        return;
    pg->state = PG_CLOSED;
    unwatch(pg);
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    fail_pending(pg);
    uv_timer_stop(&pg->timer);
    uv_close((uv_handle_t *)&pg->timer, on_handle_closed);
}
