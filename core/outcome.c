/*
 * Outcomes are written in batches: one statement records every outcome that accumulated
 * while the previous write was in flight. Each row update is guarded by owner, state and
 * attempt, so a late or repeated write can never overwrite a newer state; that also makes
 * re-sending a batch after a lost connection safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "supervisor_int.h"

static const char *kind_name(sv__outcome_kind k)
{
    switch (k) {
    case SV__OUTCOME_SUCCEEDED:
        return "succeeded";
    case SV__OUTCOME_RETRY:
        return "retry";
    case SV__OUTCOME_DEAD:
        return "dead";
    default:
        return "handback";
    }
}

int64_t sv__backoff_ms(const sv__jobtype *t, uint32_t attempt)
{
    double d = t->backoff_base_ms;
    for (uint32_t i = 1; i < attempt && d < t->backoff_max_ms; i++)
        d *= 2;
    if (d > t->backoff_max_ms)
        d = t->backoff_max_ms;
    /* Equal jitter: at least half the delay, so retries of a burst of failures spread out. */
    uint64_t half = (uint64_t)(d / 2);
    return (int64_t)(half + (uint64_t)rand() % (half + 1));
}

static void outcome_clear(sv__outcome *o)
{
    free(o->error);
    json_decref(o->result);
    json_decref(o->followups);
    json_decref(o->progress);
    memset(o, 0, sizeof *o);
}

static void list_push(sv__outcome_list *l, const sv__outcome *o)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = sv__xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->len++] = *o;
}

static void list_clear(sv__outcome_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        outcome_clear(&l->items[i]);
    l->len = 0;
}

void sv__outcome_add(sv__supervisor *sv, sv__outcome *o)
{
    list_push(&sv->pending, o);
    memset(o, 0, sizeof *o);
    sv__outcome_flush(sv);
}

bool sv__outcome_idle(const sv__supervisor *sv)
{
    return sv->pending.len == 0 && sv->inflight.len == 0;
}

/* Puts the batch in flight back in front of the pending ones, in order. */
static void requeue_inflight(sv__supervisor *sv)
{
    sv__outcome_list merged = {0};
    for (size_t i = 0; i < sv->inflight.len; i++)
        list_push(&merged, &sv->inflight.items[i]);
    for (size_t i = 0; i < sv->pending.len; i++)
        list_push(&merged, &sv->pending.items[i]);
    free(sv->pending.items);
    sv->pending = merged;
    sv->inflight.len = 0;
}

static void on_written(sv__pg *pg, const PGresult *res, void *data);

static json_t *outcome_json(const sv__outcome *o)
{
    json_t *j = json_pack("{s:I, s:I, s:s}", "id", (json_int_t)o->id, "attempt",
                          (json_int_t)o->attempt, "state", kind_name(o->kind));
    if (j == NULL)
        return NULL;
    if (o->kind == SV__OUTCOME_RETRY)
        json_object_set_new(j, "delay_ms", json_integer(o->delay_ms));
    if (o->error != NULL) {
        json_t *e = json_string(o->error);
        /* Handler messages need not be UTF-8; keep the bytes we can show. */
        json_object_set_new(j, "error", e != NULL ? e : json_string("(error message not UTF-8)"));
    }
    if (o->result != NULL)
        json_object_set(j, "result", o->result);
    if (o->followups != NULL)
        json_object_set(j, "followups", o->followups);
    if (o->progress != NULL)
        json_object_set(j, "progress", o->progress);
    return j;
}

/* The common case, a success without result or follow-ups, goes by the lighter statement. */
static bool plain_success(const sv__outcome *o)
{
    return o->kind == SV__OUTCOME_SUCCEEDED && o->result == NULL && o->followups == NULL &&
           o->progress == NULL;
}

void sv__outcome_flush(sv__supervisor *sv)
{
    /* No need to wait for a reconcile: it spares every job with an outcome in memory. */
    if (sv->inflight.len > 0 || sv->pending.len == 0 || sv->worker_id == 0 ||
        !sv__pg_is_up(sv->pgw))
        return;
    /* Normally the whole pending list goes in flight; after a refused batch, one by one. */
    size_t n = sv->solo_remaining > 0 ? 1 : sv->pending.len;
    if (n == sv->pending.len) {
        sv__outcome_list tmp = sv->inflight;
        sv->inflight = sv->pending;
        sv->pending = tmp;
    } else {
        for (size_t i = 0; i < n; i++)
            list_push(&sv->inflight, &sv->pending.items[i]);
        memmove(sv->pending.items, sv->pending.items + n,
                (sv->pending.len - n) * sizeof *sv->pending.items);
        sv->pending.len -= n;
    }

    /* Plain successes as two arrays; everything else as JSON. */
    sv__buf ids = {0}, attempts = {0};
    json_t *arr = json_array();
    size_t nplain = 0;
    for (size_t i = 0; i < sv->inflight.len; i++) {
        const sv__outcome *o = &sv->inflight.items[i];
        if (plain_success(o)) {
            sv__buf_printf(&ids, "%s%" PRId64, nplain ? "," : "{", o->id);
            sv__buf_printf(&attempts, "%s%" PRIu32, nplain ? "," : "{", o->attempt);
            nplain++;
        } else {
            json_array_append_new(arr, outcome_json(o));
        }
    }
    char *text = NULL;
    if (json_array_size(arr) > 0 && (text = json_dumps(arr, JSON_COMPACT)) == NULL) {
        sv__log_error("cannot encode %zu outcomes; dropping their results", sv->inflight.len);
        for (size_t i = 0; i < sv->inflight.len; i++) {
            json_decref(sv->inflight.items[i].result);
            sv->inflight.items[i].result = NULL;
        }
        requeue_inflight(sv);
        json_decref(arr);
        sv__buf_free(&ids);
        sv__buf_free(&attempts);
        return;
    }
    json_decref(arr);
    char owner[24];
    snprintf(owner, sizeof owner, "%" PRId64, sv->worker_id);
    sv->write.pending = 0;
    sv->write.lost = false;
    sv->write.written = 0;
    free(sv->write.refused);
    sv->write.refused = NULL;
    bool ok = true;
    if (nplain > 0) {
        sv__buf_puts(&ids, "}");
        sv__buf_puts(&attempts, "}");
        const char *params[] = {owner, ids.data, attempts.data};
        ok = sv__pg_send(sv->pgw, true, "sv_succeeded", 3, params, on_written, sv) == 0;
        sv->write.pending += ok;
    }
    if (ok && text != NULL) {
        const char *params[] = {owner, text};
        ok = sv__pg_send(sv->pgw, true, "sv_outcomes", 2, params, on_written, sv) == 0;
        sv->write.pending += ok;
    }
    /* A failed send means the connection is gone: any command already queued is answered
     * with NULL shortly, and then the whole batch goes back to pending. */
    if (!ok) {
        sv->write.lost = true;
        if (sv->write.pending == 0)
            requeue_inflight(sv);
    }
    free(text);
    sv__buf_free(&ids);
    sv__buf_free(&attempts);
}

/*
 * The database refused the batch (a result or follow-up it cannot store, say a string with
 * a NUL character). Send its outcomes one by one; an outcome refused on its own loses its
 * result and follow-ups, so that at least the job's state is recorded.
 */
static void refused(sv__supervisor *sv, const char *why)
{
    if (sv->inflight.len > 1) {
        sv__log_warning("the database refused a batch of %zu outcomes (%s); sending them one "
                        "by one",
                        sv->inflight.len, why);
        sv->solo_remaining = sv->inflight.len;
        requeue_inflight(sv);
        sv__outcome_flush(sv);
        return;
    }
    sv__outcome *o = &sv->inflight.items[0];
    if (o->result == NULL && o->followups == NULL && o->progress == NULL) {
        /* Nothing left to drop: a database-side problem; the poll timer tries again. */
        sv__log_error("cannot record the outcome of job %" PRId64 ": %s; will retry", o->id, why);
        requeue_inflight(sv);
        return;
    }
    sv__log_error("cannot store the result or follow-up jobs of job %" PRId64
                  ": %s; recording its outcome without them",
                  o->id, why);
    json_decref(o->result);
    json_decref(o->followups);
    json_decref(o->progress);
    o->result = o->followups = o->progress = NULL;
    requeue_inflight(sv);
    sv__outcome_flush(sv);
}

static void on_written(sv__pg *pg, const PGresult *res, void *data)
{
    (void)pg;
    sv__supervisor *sv = data;
    if (res == NULL) {
        sv->write.lost = true;
    } else if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        sv->write.written += strtol(PQgetvalue(res, 0, 0), NULL, 10);
    } else if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        sv->write.written += strtol(PQcmdTuples((PGresult *)res), NULL, 10);
    } else if (sv->write.refused == NULL) {
        const char *msg = PQresultErrorMessage(res);
        sv->write.refused = strndup(msg, strcspn(msg, "\n"));
    }
    if (--sv->write.pending > 0)
        return; /* the batch's other statement is still on its way */

    if (sv->write.lost || sv->write.refused != NULL) {
        /* Guards make re-sending what was recorded harmless; remember it may have been. */
        for (size_t i = 0; i < sv->inflight.len; i++)
            sv->inflight.items[i].resent = true;
    }
    if (sv->write.lost) {
        /* Connection lost: keep them; they are written again after the reconnect. */
        requeue_inflight(sv);
        return;
    }
    if (sv->write.refused != NULL) {
        char *why = sv->write.refused;
        sv->write.refused = NULL;
        refused(sv, why);
        free(why);
        return;
    }
    long written = sv->write.written;
    size_t resent = 0;
    for (size_t i = 0; i < sv->inflight.len; i++)
        resent += sv->inflight.items[i].resent;
    if ((size_t)written + resent < sv->inflight.len)
        sv__log_warning("%zu of %zu outcomes were not recorded: those jobs were no longer held "
                        "by this supervisor (rescued after a lost lease?)",
                        sv->inflight.len - (size_t)written - resent, sv->inflight.len);
    else if ((size_t)written < sv->inflight.len)
        sv__log_info("%zu outcome(s) sent again after a lost connection changed nothing "
                     "(most likely recorded before the loss)",
                     sv->inflight.len - (size_t)written);
    if (sv->solo_remaining > 0)
        sv->solo_remaining -=
            sv->inflight.len < sv->solo_remaining ? sv->inflight.len : sv->solo_remaining;
    list_clear(&sv->inflight);
    sv__outcome_flush(sv);
    sv__supervisor_progress(sv);
}

void sv__outcome_free_all(sv__supervisor *sv)
{
    free(sv->write.refused);
    sv->write.refused = NULL;
    list_clear(&sv->pending);
    list_clear(&sv->inflight);
    free(sv->pending.items);
    free(sv->inflight.items);
    sv->pending = sv->inflight = (sv__outcome_list){0};
}
