/*
 * history: the interface, the write queue and its writer thread.
 *
 * hist_put_* copy their arguments into a hist_write_t and append it to a
 * mutex-protected list; they never wait for the store. The writer thread takes
 * up to HIST_BATCH_MAX writes from the head (leaving them counted as queued),
 * hands them to the backend in one transaction or bulk, and only removes them
 * once the backend said they are stored. A failing store is retried with a
 * backoff from 100 ms doubling to 5 s; nothing is dropped, except by
 * hist_close when its drain time runs out (logged with the count).
 *
 * Out of memory aborts (the project's policy, see buf/buf.h).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "../buf/buf.h"
#include "internal.h"
#include "../log/log.h"
#include "../now/now.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define LIMIT_MAX 500
#define WRITER_NICE 10 /* added to the process's nice value, for the writer thread only */

struct hist {
    const hist_backend_t *be;
    void *store;
    unsigned char *key;
    size_t keylen;
    pthread_t writer;
    pthread_mutex_t lock;
    pthread_cond_t more;   /* something queued, or stopping */
    pthread_cond_t stored; /* stored_total moved */
    hist_write_t *head, *tail;
    size_t queued;
    uint64_t enqueued_total, stored_total, batches_total;
    int stopping;
    int writer_idle;           /* the writer waits for a first write: wake it on the next */
    int64_t drain_deadline_ms; /* monotonic; meaningful once stopping */
};

const char *hist_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case HIST_ERR_URL:
        return "history URL is neither sqlite:PATH nor mongodb://...";
    case HIST_ERR_OPEN:
        return "history store cannot be opened";
    case HIST_ERR_UNAVAILABLE:
        return "history store unavailable";
    case HIST_ERR_CURSOR:
        return "cursor does not belong to this query";
    case HIST_ERR_NOT_FOUND:
        return "not found";
    case HIST_ERR_INVALID:
        return "invalid argument";
    default:
        return "unknown history error";
    }
}

/* ---- the writer ---- */

static void write_free(hist_write_t *w)
{
    free(w->session_id);
    free(w->key);
    free(w->guest);
    free(w->guest_b);
    free(w->city_a);
    free(w->country_a);
    free(w->city_b);
    free(w->country_b);
    free(w->reason);
    free(w->text);
    free(w->action);
    free(w->detail);
    free(w);
}

/* Waits on `cond` until the monotonic time `deadline_ms` at the latest. */
static void cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait(cond, lock, &ts);
}

static void *writer_main(void *arg)
{
    hist_t *h = arg;
    hist_write_t *batch[HIST_BATCH_MAX];
    int backoff_ms = 0, failures = 0;
    int64_t last_batch_ms = 0;
    /*
     * Background work: the event loops answer guests, this thread only has to
     * keep up on average. At a lower priority its batches (tens of ms of CPU
     * each at 20,000 msgs/s) run in the loops' idle time instead of delaying
     * them. Failing (not allowed here) changes nothing else.
     */
    setpriority(PRIO_PROCESS, (id_t)gettid(), WRITER_NICE);

    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (h->head == NULL && !h->stopping) {
            h->writer_idle = 1;
            pthread_cond_wait(&h->more, &h->lock);
        }
        h->writer_idle = 0;
        /*
         * Group commit: every transaction costs an fdatasync whatever its
         * size, so a transaction starts HIST_COMMIT_INTERVAL_MS after the
         * previous one at the earliest, unless a full batch waits. At 10,000
         * msgs/s, committing as soon as anything waited spent a quarter of
         * chatd's CPU in the store.
         */
        int64_t due = last_batch_ms + HIST_COMMIT_INTERVAL_MS;
        while (!h->stopping && h->queued < HIST_BATCH_MAX && (int64_t)now_mono_ms() < due)
            cond_wait_until(&h->more, &h->lock, due);
        if (h->head == NULL || (h->stopping && failures > 0 && (int64_t)now_mono_ms() >= h->drain_deadline_ms))
            break;
        last_batch_ms = (int64_t)now_mono_ms();
        int n = 0;
        for (hist_write_t *w = h->head; w != NULL && n < HIST_BATCH_MAX; w = w->next)
            batch[n++] = w;
        pthread_mutex_unlock(&h->lock);

        int rc = h->be->write_batch(h->store, batch, n);

        pthread_mutex_lock(&h->lock);
        if (rc == 0) {
            for (int i = 0; i < n; i++) {
                hist_write_t *w = h->head;
                h->head = w->next;
                write_free(w);
            }
            if (h->head == NULL)
                h->tail = NULL;
            h->queued -= (size_t)n;
            h->stored_total += (uint64_t)n;
            h->batches_total++;
            pthread_cond_broadcast(&h->stored);
            if (failures > 0)
                log_info("history: store is back", json_pack("{s:i}", "failures", failures));
            failures = 0;
            backoff_ms = 0;
            continue;
        }
        failures++;
        backoff_ms = backoff_ms == 0 ? BACKOFF_MIN_MS : backoff_ms * 2;
        if (backoff_ms > BACKOFF_MAX_MS)
            backoff_ms = BACKOFF_MAX_MS;
        if (failures == 1 || failures % 20 == 0)
            log_warn("history: store failed, retrying", json_pack("{s:i,s:I,s:i}", "failures", failures, "queued",
                                                                  (json_int_t)h->queued, "retryInMs", backoff_ms));
        int64_t until = (int64_t)now_mono_ms() + backoff_ms;
        if (h->stopping && until > h->drain_deadline_ms)
            until = h->drain_deadline_ms;
        while ((int64_t)now_mono_ms() < until && !(h->stopping && (int64_t)now_mono_ms() >= h->drain_deadline_ms))
            cond_wait_until(&h->more, &h->lock, until);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- open and close ---- */

hist_t *hist_open(const char *url, const void *cursor_key, size_t keylen, int *code, char *err, size_t errlen)
{
    const hist_backend_t *be;
    void *store;
    int dummy;
    if (code == NULL)
        code = &dummy;
    if (url == NULL) {
        *code = HIST_ERR_URL;
        snprintf(err, errlen, "no history URL");
        return NULL;
    }
    if (cursor_key == NULL || keylen < 32) {
        *code = HIST_ERR_INVALID;
        snprintf(err, errlen, "the cursor key needs at least 32 bytes");
        return NULL;
    }
    if (strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0') {
        be = &hist_sqlite_backend;
        store = hist_sqlite_open(url + 7, err, errlen);
    } else if (strncmp(url, "mongodb://", 10) == 0 || strncmp(url, "mongodb+srv://", 14) == 0) {
        be = &hist_mongo_backend;
        store = hist_mongo_open(url, err, errlen);
    } else {
        *code = HIST_ERR_URL;
        snprintf(err, errlen, "history URL must be sqlite:PATH or mongodb://...");
        return NULL;
    }
    if (store == NULL) {
        *code = HIST_ERR_OPEN;
        return NULL;
    }

    hist_t *h = buf_xcalloc(1, sizeof *h);
    h->be = be;
    h->store = store;
    h->key = buf_xmalloc(keylen);
    memcpy(h->key, cursor_key, keylen);
    h->keylen = keylen;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->more, &ca);
    pthread_cond_init(&h->stored, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&h->writer, NULL, writer_main, h);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the history writer: %s", strerror(rc));
        be->close(store);
        pthread_cond_destroy(&h->stored);
        pthread_cond_destroy(&h->more);
        pthread_mutex_destroy(&h->lock);
        free(h->key);
        free(h);
        *code = HIST_ERR_OPEN;
        return NULL;
    }
    *code = 0;
    return h;
}

void hist_close(hist_t *h, int drain_ms)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    h->drain_deadline_ms = (int64_t)now_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
    pthread_cond_broadcast(&h->more);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->writer, NULL);

    if (h->queued > 0)
        log_error("history: writes dropped at close, the store did not take them in time",
                  json_pack("{s:I}", "dropped", (json_int_t)h->queued));
    while (h->head != NULL) {
        hist_write_t *w = h->head;
        h->head = w->next;
        write_free(w);
    }
    h->be->close(h->store);
    pthread_cond_destroy(&h->stored);
    pthread_cond_destroy(&h->more);
    pthread_mutex_destroy(&h->lock);
    OPENSSL_cleanse(h->key, h->keylen);
    free(h->key);
    free(h);
}

/* ---- writes ---- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? buf_xstrndup(s, strlen(s)) : NULL;
}

static hist_write_t *write_new(hist_wkind_t kind)
{
    hist_write_t *w = buf_xcalloc(1, sizeof *w);
    w->kind = kind;
    w->queued_ms = (int64_t)now_mono_ms();
    return w;
}

/* Returns the write's place in the one queue: stored once hist_stored_count reaches it. */
static uint64_t enqueue(hist_t *h, hist_write_t *w)
{
    pthread_mutex_lock(&h->lock);
    if (h->tail != NULL)
        h->tail->next = w;
    else
        h->head = w;
    h->tail = w;
    h->queued++;
    uint64_t ticket = ++h->enqueued_total;
    /* while it gathers a batch, the writer only needs waking once the batch is full */
    if (h->writer_idle || h->queued == HIST_BATCH_MAX)
        pthread_cond_signal(&h->more);
    pthread_mutex_unlock(&h->lock);
    return ticket;
}

void hist_put_session_start(hist_t *h, const char *session_id, const char *guest_a, const char *guest_b,
                            hist_place_t geo_a, hist_place_t geo_b, int64_t started_ms)
{
    hist_write_t *w = write_new(HIST_W_SESSION_START);
    w->session_id = dup_or_null(session_id);
    w->guest = dup_or_null(guest_a);
    w->guest_b = dup_or_null(guest_b);
    w->city_a = dup_or_null(geo_a.city);
    w->country_a = dup_or_null(geo_a.country);
    w->city_b = dup_or_null(geo_b.city);
    w->country_b = dup_or_null(geo_b.country);
    w->t1 = started_ms;
    enqueue(h, w);
}

void hist_put_session_end(hist_t *h, const char *session_id, int64_t ended_ms, const char *reason)
{
    hist_write_t *w = write_new(HIST_W_SESSION_END);
    w->session_id = dup_or_null(session_id);
    w->reason = dup_or_null(reason);
    w->t1 = ended_ms;
    enqueue(h, w);
}

void hist_put_message(hist_t *h, const char *session_id, int64_t seq, const char *message_id,
                      const char *sender_guest_id, const char *text, int64_t sent_ms, int64_t delivered_ms)
{
    hist_put_message_ticket(h, session_id, seq, message_id, sender_guest_id, text, sent_ms, delivered_ms);
}

uint64_t hist_put_message_ticket(hist_t *h, const char *session_id, int64_t seq, const char *message_id,
                                 const char *sender_guest_id, const char *text, int64_t sent_ms, int64_t delivered_ms)
{
    hist_write_t *w = write_new(HIST_W_MESSAGE);
    w->session_id = dup_or_null(session_id);
    w->seq = seq;
    w->key = dup_or_null(message_id);
    w->guest = dup_or_null(sender_guest_id);
    w->text = dup_or_null(text);
    w->t1 = sent_ms;
    w->t2 = delivered_ms;
    return enqueue(h, w);
}

uint64_t hist_stored_count(hist_t *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t n = h->stored_total;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void hist_put_report(hist_t *h, const char *report_id, const char *session_id, const char *reporter_guest_id,
                     const char *reason, int64_t created_ms)
{
    hist_write_t *w = write_new(HIST_W_REPORT);
    w->key = dup_or_null(report_id);
    w->session_id = dup_or_null(session_id);
    w->guest = dup_or_null(reporter_guest_id);
    w->reason = dup_or_null(reason);
    w->t1 = created_ms;
    enqueue(h, w);
}

void hist_put_audit(hist_t *h, const char *moderator, const char *action, const char *detail, const char *target,
                    const char *info, int64_t at_ms)
{
    static const char hex[] = "0123456789abcdef";
    static unsigned long counter;
    unsigned char r[12];
    if (RAND_bytes(r, sizeof r) != 1) {
        /* no randomness: time and a counter are still unique within this process */
        unsigned long c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        int64_t t = (int64_t)now_mono_ms();
        memcpy(r, &c, sizeof r < sizeof c ? sizeof r : sizeof c);
        memcpy(r + 4, &t, 8);
    }
    char id[2 * sizeof r + 1];
    for (size_t i = 0; i < sizeof r; i++) {
        id[2 * i] = hex[r[i] >> 4];
        id[2 * i + 1] = hex[r[i] & 15];
    }
    id[2 * sizeof r] = '\0';

    hist_write_t *w = write_new(HIST_W_AUDIT);
    w->key = dup_or_null(id);
    w->guest = dup_or_null(moderator);
    w->action = dup_or_null(action);
    w->detail = dup_or_null(detail);
    w->guest_b = dup_or_null(target);
    w->text = dup_or_null(info);
    w->t1 = at_ms;
    enqueue(h, w);
}

void hist_backlog(hist_t *h, size_t *queued, int64_t *oldest_age_ms)
{
    pthread_mutex_lock(&h->lock);
    if (queued != NULL)
        *queued = h->queued;
    if (oldest_age_ms != NULL)
        *oldest_age_ms = h->head != NULL ? (int64_t)now_mono_ms() - h->head->queued_ms : 0;
    pthread_mutex_unlock(&h->lock);
}

uint64_t hist_batches(hist_t *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t n = h->batches_total;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int hist_flush(hist_t *h, int timeout_ms)
{
    int64_t deadline = (int64_t)now_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&h->lock);
    uint64_t target = h->enqueued_total;
    while (h->stored_total < target && (int64_t)now_mono_ms() < deadline)
        cond_wait_until(&h->stored, &h->lock, deadline);
    int rc = h->stored_total >= target ? 0 : -1;
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* ---- reads ---- */

/*
 * The shared half of every list: checks the limit, reads the cursor into
 * `pos` (`*position` keeps its strings alive; the caller releases it).
 */
static int page_begin(hist_t *h, const char *query, int limit, const char *cursor, hist_pos_t *pos, json_t **position)
{
    memset(pos, 0, sizeof *pos);
    *position = NULL;
    if (limit < 1 || limit > LIMIT_MAX)
        return HIST_ERR_INVALID;
    if (cursor == NULL)
        return 0;
    *position = hist_cursor_read(h->key, h->keylen, query, cursor);
    json_t *n = json_array_get(*position, 0), *s = json_array_get(*position, 1);
    if (!json_is_integer(n) || (json_array_size(*position) == 2 && !json_is_string(s)) ||
        json_array_size(*position) > 2) {
        json_decref(*position);
        *position = NULL;
        return HIST_ERR_CURSOR;
    }
    pos->set = 1;
    pos->n = json_integer_value(n);
    pos->s = json_string_value(s);
    return 0;
}

/*
 * The other half: `items` holds up to limit + 1 items; the extra one only
 * says that there is a next page, whose cursor is the position of the last
 * kept item (fields `nkey` and, when not NULL, `skey`). Takes `items`.
 */
static json_t *page_end(hist_t *h, const char *query, json_t *items, int limit, const char *nkey, const char *skey,
                        int strip_skey)
{
    json_t *next = json_null();
    if (json_array_size(items) > (size_t)limit) {
        json_array_remove(items, (size_t)limit);
        json_t *last = json_array_get(items, (size_t)limit - 1);
        json_t *position = json_pack("[O]", json_object_get(last, nkey));
        if (skey != NULL)
            json_array_append(position, json_object_get(last, skey));
        char *c = hist_cursor_make(h->key, h->keylen, query, position);
        next = json_string(c);
        free(c);
        json_decref(position);
    }
    if (strip_skey) {
        for (size_t i = 0; i < json_array_size(items); i++)
            json_object_del(json_array_get(items, i), skey);
    }
    json_t *out = json_pack("{s:o,s:o}", "items", items, "nextCursor", next);
    if (out == NULL)
        abort();
    return out;
}

static char *query_desc(json_t *desc)
{
    char *s = json_dumps(desc, JSON_COMPACT);
    json_decref(desc);
    if (s == NULL)
        abort();
    return s;
}

int hist_sessions(hist_t *h, const char *guest_id, int64_t since_ms, int64_t until_ms, int limit, const char *cursor,
                  json_t **out)
{
    char *query = query_desc(
        json_pack("[s,o,I,I]", "sessions", hist_json_str(guest_id), (json_int_t)since_ms, (json_int_t)until_ms));
    hist_pos_t pos;
    json_t *position, *items = NULL;
    int rc = page_begin(h, query, limit, cursor, &pos, &position);
    if (rc == 0 && (pos.set && pos.s == NULL))
        rc = HIST_ERR_CURSOR;
    if (rc != 0)
        goto Exit;
    items = json_array();
    rc = h->be->sessions(h->store, guest_id, since_ms != 0 ? since_ms : INT64_MIN, until_ms != 0 ? until_ms : INT64_MAX,
                         &pos, limit + 1, items);
    if (rc == 0) {
        *out = page_end(h, query, items, limit, "startedAt", "sessionId", 0);
        items = NULL;
    }
Exit:
    json_decref(items);
    json_decref(position);
    free(query);
    return rc;
}

int hist_session(hist_t *h, const char *session_id, json_t **out)
{
    if (session_id == NULL)
        return HIST_ERR_INVALID;
    return h->be->session(h->store, session_id, out);
}

int hist_messages(hist_t *h, const char *session_id, int limit, const char *cursor, json_t **out)
{
    if (session_id == NULL)
        return HIST_ERR_INVALID;
    char *query = query_desc(json_pack("[s,s]", "messages", session_id));
    hist_pos_t pos;
    json_t *position, *items = NULL;
    int rc = page_begin(h, query, limit, cursor, &pos, &position);
    if (rc == 0 && pos.s != NULL)
        rc = HIST_ERR_CURSOR;
    if (rc != 0)
        goto Exit;
    items = json_array();
    rc = h->be->messages(h->store, session_id, &pos, limit + 1, items);
    if (rc == 0) {
        *out = page_end(h, query, items, limit, "seq", NULL, 0);
        items = NULL;
    }
Exit:
    json_decref(items);
    json_decref(position);
    free(query);
    return rc;
}

int hist_reports(hist_t *h, const char *status, int limit, const char *cursor, json_t **out)
{
    if (status != NULL && strcmp(status, "open") != 0 && strcmp(status, "closed") != 0)
        return HIST_ERR_INVALID;
    char *query = query_desc(json_pack("[s,o]", "reports", hist_json_str(status)));
    hist_pos_t pos;
    json_t *position, *items = NULL;
    int rc = page_begin(h, query, limit, cursor, &pos, &position);
    if (rc == 0 && (pos.set && pos.s == NULL))
        rc = HIST_ERR_CURSOR;
    if (rc != 0)
        goto Exit;
    items = json_array();
    rc = h->be->reports(h->store, status, &pos, limit + 1, items);
    if (rc == 0) {
        *out = page_end(h, query, items, limit, "createdAt", "reportId", 0);
        items = NULL;
    }
Exit:
    json_decref(items);
    json_decref(position);
    free(query);
    return rc;
}

int hist_close_report(hist_t *h, const char *report_id, int64_t closed_ms)
{
    if (report_id == NULL)
        return HIST_ERR_INVALID;
    /* the report may still be queued: let the writer store what came before */
    hist_flush(h, HIST_CLOSE_REPORT_FLUSH_MS);
    return h->be->close_report(h->store, report_id, closed_ms);
}

int hist_audit(hist_t *h, const char *target, int limit, const char *cursor, json_t **out)
{
    char *query = query_desc(json_pack("[s,o]", "audit", hist_json_str(target)));
    hist_pos_t pos;
    json_t *position, *items = NULL;
    int rc = page_begin(h, query, limit, cursor, &pos, &position);
    if (rc == 0 && (pos.set && pos.s == NULL))
        rc = HIST_ERR_CURSOR;
    if (rc != 0)
        goto Exit;
    items = json_array();
    rc = h->be->audit(h->store, target, &pos, limit + 1, items);
    if (rc == 0) {
        *out = page_end(h, query, items, limit, "at", "id", 1);
        items = NULL;
    }
Exit:
    json_decref(items);
    json_decref(position);
    free(query);
    return rc;
}
