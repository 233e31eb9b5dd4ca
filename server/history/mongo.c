/*
 * history on MongoDB (mongo-c-driver). Collections sessions, messages,
 * reports and audit in the URL's database ("nearchat" when the URL names
 * none). A client pool serves the writer thread and the reading threads
 * (a mongoc_client_t is single-threaded; the pool is not).
 *
 * Every write is one idempotent upsert, so a batch that failed half-way is
 * simply sent again, and the writes of a batch do not depend on each other
 * (the bulks are unordered): messages have _id "<session>:<sender>:<message
 * id>" (unambiguous: session and guest ids, made by chatd, have no ':') and
 * $setOnInsert; reports and audit entries are keyed by their ids. A
 * session start (end) is an upsert on {_id, startedAt (endedAt): null}: when
 * the session already has one, the insert half collides on _id, and that
 * duplicate key error means "the first one won", which is what we want.
 * Start and end touch different fields, so either may come first.
 *
 * Write concern: the URL's, w:majority when it says nothing. A server that is
 * down at open is not an error: the indexes are then created by the writer
 * before its first batch.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "../buf/buf.h"
#include "internal.h"
#include "../log/log.h"

/* Unless the URL says otherwise: how long an operation waits for a server that is down. */
#define SELECTION_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 3000

typedef struct mg {
    mongoc_uri_t *uri;
    mongoc_client_pool_t *pool;
    char *db;
    int indexed; /* after open, read and written by the writer thread only */
} mg_t;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The driver's own warnings go to our log; its chatter below that is dropped. */
static void driver_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    if (level <= MONGOC_LOG_LEVEL_WARNING)
        log_warn("history: mongo driver", json_pack("{s:s,s:s}", "domain", domain, "message", message));
}

static void init_driver(void)
{
    mongoc_init();
    mongoc_log_set_handler(driver_log, NULL);
}

static void log_mongo(const char *what, const bson_error_t *error)
{
    log_warn("history: mongodb failed", json_pack("{s:s,s:i,s:i,s:s}", "op", what, "domain", (int)error->domain, "code",
                                                  (int)error->code, "error", error->message));
}

/* ---- indexes ---- */

static int create_indexes(mongoc_client_t *c, const char *db)
{
    bson_t *cmds[4];
    cmds[0] = BCON_NEW("createIndexes", BCON_UTF8("sessions"), "indexes", "[", "{", "key", "{", "guests", BCON_INT32(1),
                       "startedAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name", BCON_UTF8("guests_startedAt"),
                       "}", "{", "key", "{", "startedAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name",
                       BCON_UTF8("startedAt"), "}", "]");
    cmds[1] =
        BCON_NEW("createIndexes", BCON_UTF8("messages"), "indexes", "[", "{", "key", "{", "sessionId", BCON_INT32(1),
                 "seq", BCON_INT32(1), "}", "name", BCON_UTF8("sessionId_seq"), "unique", BCON_BOOL(true), "}", "]");
    cmds[2] = BCON_NEW("createIndexes", BCON_UTF8("reports"), "indexes", "[", "{", "key", "{", "status", BCON_INT32(1),
                       "createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name", BCON_UTF8("status_createdAt"),
                       "}", "{", "key", "{", "createdAt", BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name",
                       BCON_UTF8("createdAt"), "}", "{", "key", "{", "sessionId", BCON_INT32(1), "}", "name",
                       BCON_UTF8("sessionId"), "}", "]");
    cmds[3] =
        BCON_NEW("createIndexes", BCON_UTF8("audit"), "indexes", "[", "{", "key", "{", "at", BCON_INT32(-1), "_id",
                 BCON_INT32(-1), "}", "name", BCON_UTF8("at"), "}", "{", "key", "{", "target", BCON_INT32(1), "at",
                 BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "name", BCON_UTF8("target_at"), "}", "]");
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        bson_error_t error;
        if (rc == 0 && !mongoc_client_command_simple(c, db, cmds[i], NULL, NULL, &error)) {
            log_mongo("createIndexes", &error);
            rc = -1;
        }
        bson_destroy(cmds[i]);
    }
    return rc;
}

/* ---- open and close ---- */

static void mg_close(void *store)
{
    mg_t *m = store;
    if (m->pool != NULL)
        mongoc_client_pool_destroy(m->pool);
    mongoc_uri_destroy(m->uri);
    free(m->db);
    free(m);
}

void *hist_mongo_open(const char *url, char *err, size_t errlen)
{
    pthread_once(&init_once, init_driver);
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &error);
    if (uri == NULL) {
        snprintf(err, errlen, "bad mongodb URL: %s", error.message);
        return NULL;
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, SELECTION_TIMEOUT_MS);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, CONNECT_TIMEOUT_MS);
    const mongoc_write_concern_t *wc = mongoc_uri_get_write_concern(uri);
    if (mongoc_write_concern_get_w(wc) == MONGOC_WRITE_CONCERN_W_DEFAULT && mongoc_write_concern_get_wtag(wc) == NULL) {
        mongoc_write_concern_t *majority = mongoc_write_concern_copy(wc);
        mongoc_write_concern_set_w(majority, MONGOC_WRITE_CONCERN_W_MAJORITY);
        mongoc_uri_set_write_concern(uri, majority);
        mongoc_write_concern_destroy(majority);
    }

    mg_t *m = buf_xcalloc(1, sizeof *m);
    m->uri = uri;
    const char *db = mongoc_uri_get_database(uri);
    db = db != NULL && db[0] != '\0' ? db : "nearchat";
    m->db = buf_xstrndup(db, strlen(db));
    m->pool = mongoc_client_pool_new(uri);
    if (m->pool == NULL) {
        snprintf(err, errlen, "cannot create a mongodb client pool for this URL");
        mg_close(m);
        return NULL;
    }
    mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(m->pool, "nearchat-history");

    /*
     * Indexes now, with a single-threaded client that tries the server once
     * (a pool would wait the whole selection timeout for a server that is down).
     */
    mongoc_client_t *c = mongoc_client_new_from_uri(uri);
    if (c != NULL) {
        mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
        m->indexed = create_indexes(c, m->db) == 0;
        mongoc_client_destroy(c);
    }
    if (!m->indexed)
        log_warn("history: mongodb is not reachable at open; writes wait for it", json_pack("{s:s}", "db", m->db));
    return m;
}

/* ---- writes ---- */

/* Appends a string, or null when `s` is NULL. */
static void append_str(bson_t *b, const char *key, const char *s)
{
    if (s != NULL)
        BSON_APPEND_UTF8(b, key, s);
    else
        BSON_APPEND_NULL(b, key);
}

static void append_place(bson_t *arr, const char *idx, const char *city, const char *country)
{
    bson_t p;
    BSON_APPEND_DOCUMENT_BEGIN(arr, idx, &p);
    append_str(&p, "city", city);
    append_str(&p, "country", country);
    bson_append_document_end(arr, &p);
}

/*
 * Adds an upsert of `update` (taken) on {_id: id} plus, when `null_field`,
 * {null_field: null} to `bulk`. 1 when added; 0 when the driver refused the
 * document (logged: such a write is skipped, since sending it again cannot help).
 */
static int bulk_update(mongoc_bulk_operation_t *bulk, const char *id, const char *null_field, bson_t *update)
{
    bson_t sel = BSON_INITIALIZER;
    append_str(&sel, "_id", id);
    if (null_field != NULL)
        BSON_APPEND_NULL(&sel, null_field);
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    bson_error_t error;
    bool ok = mongoc_bulk_operation_update_one_with_opts(bulk, &sel, update, opts, &error);
    if (!ok)
        log_error("history: write refused by the mongodb driver, skipped", json_pack("{s:s}", "error", error.message));
    bson_destroy(opts);
    bson_destroy(&sel);
    bson_destroy(update);
    return ok ? 1 : 0;
}

/* Adds the upsert of `w` to `bulk`: 1, or 0 when it was skipped (logged). */
static int add_write(mongoc_bulk_operation_t *bulk, const hist_write_t *w)
{
    bson_t *u = bson_new(), set;
    switch (w->kind) {
    case HIST_W_SESSION_START: {
        if (w->session_id == NULL)
            break;
        bson_t arr, ins;
        BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
        append_str(&set, "sessionId", w->session_id);
        BSON_APPEND_ARRAY_BEGIN(&set, "guests", &arr);
        append_str(&arr, "0", w->guest);
        append_str(&arr, "1", w->guest_b);
        bson_append_array_end(&set, &arr);
        BSON_APPEND_ARRAY_BEGIN(&set, "geo", &arr);
        append_place(&arr, "0", w->city_a, w->country_a);
        append_place(&arr, "1", w->city_b, w->country_b);
        bson_append_array_end(&set, &arr);
        BSON_APPEND_INT64(&set, "startedAt", w->t1);
        bson_append_document_end(u, &set);
        BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &ins);
        BSON_APPEND_NULL(&ins, "endedAt");
        BSON_APPEND_NULL(&ins, "endReason");
        bson_append_document_end(u, &ins);
        return bulk_update(bulk, w->session_id, "startedAt", u);
    }
    case HIST_W_SESSION_END:
        if (w->session_id == NULL)
            break;
        BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
        append_str(&set, "sessionId", w->session_id);
        BSON_APPEND_INT64(&set, "endedAt", w->t1);
        append_str(&set, "endReason", w->reason);
        bson_append_document_end(u, &set);
        return bulk_update(bulk, w->session_id, "endedAt", u);
    case HIST_W_MESSAGE: {
        if (w->session_id == NULL || w->guest == NULL || w->key == NULL)
            break;
        char *id = bson_strdup_printf("%s:%s:%s", w->session_id, w->guest, w->key);
        BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &set);
        append_str(&set, "sessionId", w->session_id);
        BSON_APPEND_INT64(&set, "seq", w->seq);
        append_str(&set, "id", w->key);
        append_str(&set, "senderGuestId", w->guest);
        append_str(&set, "text", w->text);
        BSON_APPEND_INT64(&set, "sentAt", w->t1);
        BSON_APPEND_INT64(&set, "deliveredAt", w->t2);
        bson_append_document_end(u, &set);
        int rc = bulk_update(bulk, id, NULL, u);
        bson_free(id);
        return rc;
    }
    case HIST_W_REPORT:
        if (w->key == NULL)
            break;
        BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &set);
        append_str(&set, "reportId", w->key);
        append_str(&set, "sessionId", w->session_id);
        append_str(&set, "reporterGuestId", w->guest);
        append_str(&set, "reason", w->reason);
        BSON_APPEND_INT64(&set, "createdAt", w->t1);
        BSON_APPEND_UTF8(&set, "status", "open");
        BSON_APPEND_NULL(&set, "closedAt");
        bson_append_document_end(u, &set);
        return bulk_update(bulk, w->key, NULL, u);
    case HIST_W_AUDIT:
        BSON_APPEND_DOCUMENT_BEGIN(u, "$setOnInsert", &set);
        append_str(&set, "moderator", w->guest);
        append_str(&set, "action", w->action);
        append_str(&set, "detail", w->detail);
        append_str(&set, "target", w->guest_b);
        append_str(&set, "info", w->text);
        BSON_APPEND_INT64(&set, "at", w->t1);
        bson_append_document_end(u, &set);
        return bulk_update(bulk, w->key, NULL, u);
    }
    /* a write without its key cannot be stored; skipping it beats retrying it forever */
    log_warn("history: write without its ids, skipped", json_pack("{s:i}", "kind", (int)w->kind));
    bson_destroy(u);
    return 0;
}

/*
 * Whether a failed bulk was answered with write errors only, which retrying
 * cannot cure: duplicate keys (11000) are the idempotency at work (a session
 * that already started or ended, two upserts that raced, a taken seq); any
 * other is a write the server refuses, logged with its count and skipped
 * rather than blocking the queue forever. A failure without write errors
 * (network, selection, write concern) is retried.
 */
static int only_write_errors(const bson_t *reply, const char *coll)
{
    bson_iter_t it, e;
    if (bson_iter_init_find(&it, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_t w;
        if (bson_iter_recurse(&it, &w) && bson_iter_next(&w))
            return 0;
    }
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &e))
        return 0;
    int n = 0, refused = 0;
    int64_t code = 0;
    while (bson_iter_next(&e)) {
        bson_iter_t c;
        n++;
        if (BSON_ITER_HOLDS_DOCUMENT(&e) && bson_iter_recurse(&e, &c) && bson_iter_find(&c, "code") &&
            bson_iter_as_int64(&c) == 11000)
            continue;
        refused++;
        code = BSON_ITER_HOLDS_DOCUMENT(&e) && bson_iter_recurse(&e, &c) && bson_iter_find(&c, "code")
                   ? bson_iter_as_int64(&c)
                   : -1;
    }
    if (refused > 0)
        log_error("history: mongodb refused writes, skipped",
                  json_pack("{s:s,s:i,s:I}", "collection", coll, "refused", refused, "code", (json_int_t)code));
    return n > 0;
}

static const char *const COLLS[] = {"sessions", "messages", "reports", "audit"};

static int coll_of(hist_wkind_t kind)
{
    switch (kind) {
    case HIST_W_SESSION_START:
    case HIST_W_SESSION_END:
        return 0;
    case HIST_W_MESSAGE:
        return 1;
    case HIST_W_REPORT:
        return 2;
    case HIST_W_AUDIT:
        return 3;
    }
    return 3;
}

static int mg_write_batch(void *store, hist_write_t **w, int n)
{
    mg_t *m = store;
    mongoc_client_t *c = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll[4] = {NULL};
    mongoc_bulk_operation_t *bulk[4] = {NULL};
    int ops[4] = {0};
    int rc = -1;
    if (!m->indexed) {
        if (create_indexes(c, m->db) != 0)
            goto Exit;
        m->indexed = 1;
    }
    for (int i = 0; i < n; i++) {
        int k = coll_of(w[i]->kind);
        if (bulk[k] == NULL) {
            bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
            coll[k] = mongoc_client_get_collection(c, m->db, COLLS[k]);
            bulk[k] = mongoc_collection_create_bulk_operation_with_opts(coll[k], opts);
            bson_destroy(opts);
        }
        ops[k] += add_write(bulk[k], w[i]);
    }
    for (int k = 0; k < 4; k++) {
        if (ops[k] == 0)
            continue;
        bson_t reply;
        bson_error_t error;
        int ok = mongoc_bulk_operation_execute(bulk[k], &reply, &error) != 0 || only_write_errors(&reply, COLLS[k]);
        if (!ok)
            log_mongo(COLLS[k], &error);
        bson_destroy(&reply);
        if (!ok)
            goto Exit;
    }
    rc = 0;
Exit:
    for (int k = 0; k < 4; k++) {
        if (bulk[k] != NULL)
            mongoc_bulk_operation_destroy(bulk[k]);
        if (coll[k] != NULL)
            mongoc_collection_destroy(coll[k]);
    }
    mongoc_client_pool_push(m->pool, c);
    return rc;
}

/* ---- reads ---- */

static const char *doc_str(const bson_t *doc, const char *path)
{
    bson_iter_t it, d;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &d) && BSON_ITER_HOLDS_UTF8(&d))
        return bson_iter_utf8(&d, NULL);
    return NULL;
}

/* The integer at `path`; *has is 0 when it is missing or null. */
static int64_t doc_i64(const bson_t *doc, const char *path, int *has)
{
    bson_iter_t it, d;
    int dummy;
    if (has == NULL)
        has = &dummy;
    *has = 0;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &d) &&
        (BSON_ITER_HOLDS_INT64(&d) || BSON_ITER_HOLDS_INT32(&d) || BSON_ITER_HOLDS_DOUBLE(&d))) {
        *has = 1;
        return bson_iter_as_int64(&d);
    }
    return 0;
}

static json_t *doc_session(const bson_t *d)
{
    int has_started, has_ended;
    int64_t started = doc_i64(d, "startedAt", &has_started), ended = doc_i64(d, "endedAt", &has_ended);
    return hist_json_session(doc_str(d, "_id"), doc_str(d, "guests.0"), doc_str(d, "guests.1"),
                             doc_str(d, "geo.0.city"), doc_str(d, "geo.0.country"), doc_str(d, "geo.1.city"),
                             doc_str(d, "geo.1.country"), has_started, started, has_ended, ended,
                             doc_str(d, "endReason"));
}

static json_t *doc_message(const bson_t *d)
{
    return hist_json_message(doc_str(d, "sessionId"), doc_i64(d, "seq", NULL), doc_str(d, "id"),
                             doc_str(d, "senderGuestId"), doc_str(d, "text"), doc_i64(d, "sentAt", NULL),
                             doc_i64(d, "deliveredAt", NULL));
}

static json_t *doc_report(const bson_t *d)
{
    int has_closed;
    int64_t closed = doc_i64(d, "closedAt", &has_closed);
    return hist_json_report(doc_str(d, "_id"), doc_str(d, "sessionId"), doc_str(d, "reporterGuestId"),
                            doc_str(d, "reason"), doc_i64(d, "createdAt", NULL), doc_str(d, "status"), has_closed,
                            closed);
}

static json_t *doc_audit(const bson_t *d)
{
    return hist_json_audit(doc_str(d, "_id"), doc_str(d, "moderator"), doc_str(d, "action"), doc_str(d, "detail"),
                           doc_str(d, "target"), doc_str(d, "info"), doc_i64(d, "at", NULL));
}

/*
 * Runs a find on `coll` and appends every document through `conv` to
 * `items`, or (items NULL) returns the first in `*one`. Takes `filter` and
 * `opts`. 0, HIST_ERR_NOT_FOUND (no document for `one`) or HIST_ERR_UNAVAILABLE.
 */
static int run_find(mg_t *m, const char *coll, bson_t *filter, bson_t *opts, json_t *(*conv)(const bson_t *),
                    json_t *items, json_t **one)
{
    mongoc_client_t *c = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, m->db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t error;
    int rc = 0, got = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        got = 1;
        if (items == NULL) {
            *one = conv(doc);
            break;
        }
        json_array_append_new(items, conv(doc));
    }
    if (mongoc_cursor_error(cur, &error)) {
        log_mongo("find", &error);
        rc = HIST_ERR_UNAVAILABLE;
        if (items != NULL)
            json_array_clear(items);
        if (got && items == NULL) {
            json_decref(*one);
            *one = NULL;
        }
    } else if (items == NULL && !got) {
        rc = HIST_ERR_NOT_FOUND;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(m->pool, c);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

/* Appends the keyset condition "(nkey, _id) before `after`" in the order `dir` (-1 newest first). */
static void append_after(bson_t *filter, const char *nkey, const hist_pos_t *after)
{
    if (!after->set)
        return;
    bson_t or, a, b, cmp;
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &a);
    BSON_APPEND_DOCUMENT_BEGIN(&a, nkey, &cmp);
    BSON_APPEND_INT64(&cmp, "$lt", after->n);
    bson_append_document_end(&a, &cmp);
    bson_append_document_end(& or, &a);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &b);
    BSON_APPEND_INT64(&b, nkey, after->n);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "_id", &cmp);
    append_str(&cmp, "$lt", after->s);
    bson_append_document_end(&b, &cmp);
    bson_append_document_end(& or, &b);
    bson_append_array_end(filter, & or);
}

static bson_t *newest_first(const char *nkey, int fetch)
{
    return BCON_NEW("sort", "{", nkey, BCON_INT32(-1), "_id", BCON_INT32(-1), "}", "limit", BCON_INT64(fetch));
}

static int mg_sessions(void *store, const char *guest, int64_t since, int64_t until, const hist_pos_t *after, int fetch,
                       json_t *items)
{
    bson_t *filter = bson_new(), range;
    if (guest != NULL)
        BSON_APPEND_UTF8(filter, "guests", guest);
    BSON_APPEND_DOCUMENT_BEGIN(filter, "startedAt", &range);
    BSON_APPEND_INT64(&range, "$gte", since);
    BSON_APPEND_INT64(&range, "$lte", until);
    bson_append_document_end(filter, &range);
    append_after(filter, "startedAt", after);
    return run_find(store, "sessions", filter, newest_first("startedAt", fetch), doc_session, items, NULL);
}

static int mg_session(void *store, const char *session_id, json_t **out)
{
    return run_find(store, "sessions", BCON_NEW("_id", BCON_UTF8(session_id)), BCON_NEW("limit", BCON_INT64(1)),
                    doc_session, NULL, out);
}

static int mg_messages(void *store, const char *session_id, const hist_pos_t *after, int fetch, json_t *items)
{
    bson_t *filter = BCON_NEW("sessionId", BCON_UTF8(session_id));
    if (after->set) {
        bson_t gt;
        BSON_APPEND_DOCUMENT_BEGIN(filter, "seq", &gt);
        BSON_APPEND_INT64(&gt, "$gt", after->n);
        bson_append_document_end(filter, &gt);
    }
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(1), "}", "limit", BCON_INT64(fetch));
    return run_find(store, "messages", filter, opts, doc_message, items, NULL);
}

static int mg_reports(void *store, const char *status, const hist_pos_t *after, int fetch, json_t *items)
{
    bson_t *filter = bson_new();
    if (status != NULL)
        BSON_APPEND_UTF8(filter, "status", status);
    append_after(filter, "createdAt", after);
    return run_find(store, "reports", filter, newest_first("createdAt", fetch), doc_report, items, NULL);
}

static int mg_audit(void *store, const char *target, const hist_pos_t *after, int fetch, json_t *items)
{
    bson_t *filter = bson_new();
    if (target != NULL)
        BSON_APPEND_UTF8(filter, "target", target);
    append_after(filter, "at", after);
    return run_find(store, "audit", filter, newest_first("at", fetch), doc_audit, items, NULL);
}

static int mg_close_report(void *store, const char *report_id, int64_t closed_ms)
{
    mg_t *m = store;
    mongoc_client_t *c = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, m->db, "reports");
    /* only an open report changes: closing twice keeps the first close time */
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(report_id), "status", BCON_UTF8("open"));
    bson_t *upd = BCON_NEW("$set", "{", "status", BCON_UTF8("closed"), "closedAt", BCON_INT64(closed_ms), "}");
    bson_t reply;
    bson_error_t error;
    int rc = 0;
    if (!mongoc_collection_update_one(col, sel, upd, NULL, &reply, &error)) {
        log_mongo("close report", &error);
        rc = HIST_ERR_UNAVAILABLE;
    } else {
        bson_iter_t it;
        int64_t matched = bson_iter_init_find(&it, &reply, "matchedCount") ? bson_iter_as_int64(&it) : 0;
        if (matched == 0) {
            json_t *r = NULL;
            rc = run_find(m, "reports", BCON_NEW("_id", BCON_UTF8(report_id)), BCON_NEW("limit", BCON_INT64(1)),
                          doc_report, NULL, &r);
            json_decref(r);
        }
    }
    bson_destroy(&reply);
    bson_destroy(sel);
    bson_destroy(upd);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(m->pool, c);
    return rc;
}

const hist_backend_t hist_mongo_backend = {
    .write_batch = mg_write_batch,
    .sessions = mg_sessions,
    .session = mg_session,
    .messages = mg_messages,
    .reports = mg_reports,
    .close_report = mg_close_report,
    .audit = mg_audit,
    .close = mg_close,
};
