/*
 * history on SQLite: one file in WAL mode, two connections. The writer
 * thread owns `wdb` (and hist_close_report borrows it under `wlock`); reads
 * share `rdb` under `rlock`. WAL lets reads go on while a batch is written,
 * and busy_timeout absorbs the short locks between the two connections.
 * synchronous=FULL: a committed batch survives a power cut, not only a crash.
 *
 * Idempotency: a message has one seq in its session whatever the times it
 * is sent (chat.lua numbers an id once), so messages are unique by (session_id,
 * seq) and go in with INSERT OR IGNORE; reports and audit entries are keyed by
 * their ids; a session's end only fills an empty end.
 *
 * Messages live in a rowid table, appended in the order they are delivered,
 * with the (session_id, seq) index beside it. Keyed by session instead, every
 * insert landed on a random page of two B-trees, and at 15,000 msgs/s writing
 * those pages to the WAL cost chatd more CPU than anything but the sockets.
 * (Files made by an earlier version keep their WITHOUT ROWID table: the same
 * statements work on both.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <sys/stat.h>

#include "../buf/buf.h"
#include "internal.h"
#include "../log/log.h"

#define BUSY_TIMEOUT_MS 5000

typedef struct sq {
    sqlite3 *wdb, *rdb;
    pthread_mutex_t wlock, rlock;
    sqlite3_stmt *st_start, *st_end, *st_message, *st_report, *st_audit;
} sq_t;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS sessions ("
    " session_id TEXT PRIMARY KEY, guest_a TEXT, guest_b TEXT,"
    " city_a TEXT, country_a TEXT, city_b TEXT, country_b TEXT,"
    " started_at INTEGER, ended_at INTEGER, end_reason TEXT);"
    "CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at, session_id);"
    "CREATE INDEX IF NOT EXISTS sessions_guest_a ON sessions (guest_a, started_at, session_id);"
    "CREATE INDEX IF NOT EXISTS sessions_guest_b ON sessions (guest_b, started_at, session_id);"
    "CREATE TABLE IF NOT EXISTS messages ("
    " session_id TEXT NOT NULL, sender_guest_id TEXT NOT NULL, message_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, text TEXT NOT NULL, sent_at INTEGER NOT NULL, delivered_at INTEGER NOT NULL,"
    " UNIQUE (session_id, seq));"
    "CREATE TABLE IF NOT EXISTS reports ("
    " report_id TEXT PRIMARY KEY, session_id TEXT, reporter_guest_id TEXT, reason TEXT,"
    " created_at INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'open', closed_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS reports_created ON reports (created_at, report_id);"
    "CREATE INDEX IF NOT EXISTS reports_status ON reports (status, created_at, report_id);"
    "CREATE INDEX IF NOT EXISTS reports_session ON reports (session_id);"
    "CREATE TABLE IF NOT EXISTS audit ("
    " audit_id TEXT PRIMARY KEY, moderator TEXT, action TEXT, detail TEXT, at INTEGER NOT NULL,"
    " target TEXT, info TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_at ON audit (at, audit_id);";
/* A file made before the audit had a target gains the columns (they stay NULL in its old rows). */
static const char MIGRATE_AUDIT[] = "ALTER TABLE audit ADD COLUMN target TEXT; ALTER TABLE audit ADD COLUMN info TEXT;";
static const char AUDIT_TARGET_INDEX[] = "CREATE INDEX IF NOT EXISTS audit_target ON audit (target, at, audit_id);";

/* The first start fills the row (an end may have come first); later starts change nothing. */
static const char SQL_START[] =
    "INSERT INTO sessions (session_id, guest_a, guest_b, city_a, country_a, city_b, country_b, started_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (session_id) DO UPDATE SET"
    " guest_a = excluded.guest_a, guest_b = excluded.guest_b, city_a = excluded.city_a,"
    " country_a = excluded.country_a, city_b = excluded.city_b, country_b = excluded.country_b,"
    " started_at = excluded.started_at WHERE started_at IS NULL";
/* The first end wins. */
static const char SQL_END[] = "INSERT INTO sessions (session_id, ended_at, end_reason) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT (session_id) DO UPDATE SET ended_at = excluded.ended_at,"
                              " end_reason = excluded.end_reason WHERE ended_at IS NULL";
static const char SQL_MESSAGE[] = "INSERT OR IGNORE INTO messages (session_id, seq, message_id, sender_guest_id, text,"
                                  " sent_at, delivered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_REPORT[] = "INSERT OR IGNORE INTO reports (report_id, session_id, reporter_guest_id, reason,"
                                 " created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_AUDIT[] = "INSERT OR IGNORE INTO audit (audit_id, moderator, action, detail, at, target, info)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

static const char SESSION_COLS[] = "session_id, guest_a, guest_b, city_a, country_a, city_b, country_b,"
                                   " started_at, ended_at, end_reason";

static void log_sqlite(const char *what, sqlite3 *db)
{
    log_warn("history: sqlite failed",
             json_pack("{s:s,s:i,s:s}", "op", what, "code", sqlite3_extended_errcode(db), "error", sqlite3_errmsg(db)));
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ? 0 : -1;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int open_conn(const char *path, sqlite3 **db, char *err, size_t errlen)
{
    /* the file's own folder may be new (var/ of a first `make run`): make that one level */
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "sqlite %s: %s", path, *db != NULL ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        return -1;
    }
    sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
    return 0;
}

static void sq_close(void *store)
{
    sq_t *s = store;
    sqlite3_finalize(s->st_start);
    sqlite3_finalize(s->st_end);
    sqlite3_finalize(s->st_message);
    sqlite3_finalize(s->st_report);
    sqlite3_finalize(s->st_audit);
    sqlite3_close(s->wdb);
    sqlite3_close(s->rdb);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->rlock);
    free(s);
}

/* Adds the audit's target and info columns when the file lacks them; 0, or -1 with `*msg` set. */
static int migrate_audit(sqlite3 *db, char **msg)
{
    sqlite3_stmt *probe = NULL;
    int has = sqlite3_prepare_v2(db, "SELECT target, info FROM audit LIMIT 0", -1, &probe, NULL) == SQLITE_OK;
    sqlite3_finalize(probe);
    if (has)
        return 0;
    return sqlite3_exec(db, MIGRATE_AUDIT, NULL, NULL, msg) == SQLITE_OK ? 0 : -1;
}

void *hist_sqlite_open(const char *path, char *err, size_t errlen)
{
    sq_t *s = buf_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    char *msg = NULL;
    if (open_conn(path, &s->wdb, err, errlen) != 0)
        goto Error;
    if (sqlite3_exec(s->wdb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-32768;", NULL, NULL,
                     &msg) != SQLITE_OK ||
        sqlite3_exec(s->wdb, SCHEMA, NULL, NULL, &msg) != SQLITE_OK || migrate_audit(s->wdb, &msg) != 0 ||
        sqlite3_exec(s->wdb, AUDIT_TARGET_INDEX, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite %s: %s", path, msg != NULL ? msg : sqlite3_errmsg(s->wdb));
        goto Error;
    }
    if (prepare(s->wdb, SQL_START, &s->st_start) != 0 || prepare(s->wdb, SQL_END, &s->st_end) != 0 ||
        prepare(s->wdb, SQL_MESSAGE, &s->st_message) != 0 || prepare(s->wdb, SQL_REPORT, &s->st_report) != 0 ||
        prepare(s->wdb, SQL_AUDIT, &s->st_audit) != 0) {
        snprintf(err, errlen, "sqlite %s: %s", path, sqlite3_errmsg(s->wdb));
        goto Error;
    }
    if (open_conn(path, &s->rdb, err, errlen) != 0)
        goto Error;
    return s;
Error:
    sqlite3_free(msg);
    sq_close(s);
    return NULL;
}

/* Runs one prepared write statement of the batch; 0 or -1. */
static int write_one(sq_t *s, const hist_write_t *w)
{
    sqlite3_stmt *st = NULL;
    switch (w->kind) {
    case HIST_W_SESSION_START:
        st = s->st_start;
        bind_text(st, 1, w->session_id);
        bind_text(st, 2, w->guest);
        bind_text(st, 3, w->guest_b);
        bind_text(st, 4, w->city_a);
        bind_text(st, 5, w->country_a);
        bind_text(st, 6, w->city_b);
        bind_text(st, 7, w->country_b);
        sqlite3_bind_int64(st, 8, w->t1);
        break;
    case HIST_W_SESSION_END:
        st = s->st_end;
        bind_text(st, 1, w->session_id);
        sqlite3_bind_int64(st, 2, w->t1);
        bind_text(st, 3, w->reason);
        break;
    case HIST_W_MESSAGE:
        st = s->st_message;
        bind_text(st, 1, w->session_id);
        sqlite3_bind_int64(st, 2, w->seq);
        bind_text(st, 3, w->key);
        bind_text(st, 4, w->guest);
        bind_text(st, 5, w->text);
        sqlite3_bind_int64(st, 6, w->t1);
        sqlite3_bind_int64(st, 7, w->t2);
        break;
    case HIST_W_REPORT:
        st = s->st_report;
        bind_text(st, 1, w->key);
        bind_text(st, 2, w->session_id);
        bind_text(st, 3, w->guest);
        bind_text(st, 4, w->reason);
        sqlite3_bind_int64(st, 5, w->t1);
        break;
    case HIST_W_AUDIT:
        st = s->st_audit;
        bind_text(st, 1, w->key);
        bind_text(st, 2, w->guest);
        bind_text(st, 3, w->action);
        bind_text(st, 4, w->detail);
        sqlite3_bind_int64(st, 5, w->t1);
        bind_text(st, 6, w->guest_b);
        bind_text(st, 7, w->text);
        break;
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return 0;
    /* a constraint (a NULL where the schema wants a value) is the write's fault, not the store's: skip it */
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        log_warn("history: write refused by a constraint, skipped", json_pack("{s:i}", "kind", (int)w->kind));
        return 0;
    }
    return -1;
}

static int sq_write_batch(void *store, hist_write_t **w, int n)
{
    sq_t *s = store;
    int rc = -1;
    pthread_mutex_lock(&s->wlock);
    if (sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        log_sqlite("begin", s->wdb);
        goto Exit;
    }
    for (int i = 0; i < n; i++) {
        if (write_one(s, w[i]) != 0) {
            log_sqlite("write", s->wdb);
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
            goto Exit;
        }
    }
    if (sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        log_sqlite("commit", s->wdb);
        sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        goto Exit;
    }
    rc = 0;
Exit:
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

/* ---- reads ---- */

static json_t *row_session(sqlite3_stmt *st)
{
    int has_started = sqlite3_column_type(st, 7) != SQLITE_NULL, has_ended = sqlite3_column_type(st, 8) != SQLITE_NULL;
    return hist_json_session(col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3), col_text(st, 4),
                             col_text(st, 5), col_text(st, 6), has_started, sqlite3_column_int64(st, 7), has_ended,
                             sqlite3_column_int64(st, 8), col_text(st, 9));
}

static json_t *row_message(sqlite3_stmt *st)
{
    return hist_json_message(col_text(st, 0), sqlite3_column_int64(st, 1), col_text(st, 2), col_text(st, 3),
                             col_text(st, 4), sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6));
}

static json_t *row_report(sqlite3_stmt *st)
{
    return hist_json_report(col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
                            sqlite3_column_int64(st, 4), col_text(st, 5), sqlite3_column_type(st, 6) != SQLITE_NULL,
                            sqlite3_column_int64(st, 6));
}

static json_t *row_audit(sqlite3_stmt *st)
{
    return hist_json_audit(col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3), col_text(st, 5),
                           col_text(st, 6), sqlite3_column_int64(st, 4));
}

/*
 * Runs a read on `rdb`: prepares `sql`, lets `bind` fill it, appends every
 * row through `row` to `items` (or, when `items` is NULL, returns the first
 * row in `*one`). 0, HIST_ERR_NOT_FOUND (no row for `one`) or HIST_ERR_UNAVAILABLE.
 */
typedef void (*binder_t)(sqlite3_stmt *st, const void *arg);

static int run_read(sq_t *s, const char *sql, binder_t bind, const void *arg, json_t *(*row)(sqlite3_stmt *),
                    json_t *items, json_t **one)
{
    sqlite3_stmt *st = NULL;
    int rc = HIST_ERR_UNAVAILABLE, step;
    pthread_mutex_lock(&s->rlock);
    if (sqlite3_prepare_v2(s->rdb, sql, -1, &st, NULL) != SQLITE_OK) {
        log_sqlite("prepare read", s->rdb);
        goto Exit;
    }
    bind(st, arg);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (items == NULL) {
            *one = row(st);
            break;
        }
        json_array_append_new(items, row(st));
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        log_sqlite("read", s->rdb);
        if (items != NULL)
            json_array_clear(items);
        goto Exit;
    }
    rc = items == NULL && step != SQLITE_ROW ? HIST_ERR_NOT_FOUND : 0;
Exit:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

typedef struct sessions_args {
    const char *guest;
    int64_t since, until;
    const hist_pos_t *after;
    int fetch;
} sessions_args_t;

static void bind_sessions(sqlite3_stmt *st, const void *arg)
{
    const sessions_args_t *a = arg;
    bind_text(st, 1, a->guest);
    sqlite3_bind_int64(st, 2, a->since);
    sqlite3_bind_int64(st, 3, a->until);
    if (a->after->set) {
        sqlite3_bind_int64(st, 4, a->after->n);
        bind_text(st, 5, a->after->s);
    }
    sqlite3_bind_int(st, 6, a->fetch);
}

static int sq_sessions(void *store, const char *guest, int64_t since, int64_t until, const hist_pos_t *after, int fetch,
                       json_t *items)
{
    char sql[1024];
    /* two shapes so that each can use its index: by guest (either side), or by time alone */
    if (guest != NULL)
        snprintf(sql, sizeof sql,
                 "SELECT %s FROM sessions WHERE session_id IN ("
                 " SELECT session_id FROM sessions WHERE guest_a = ?1 AND started_at BETWEEN ?2 AND ?3"
                 " UNION SELECT session_id FROM sessions WHERE guest_b = ?1 AND started_at BETWEEN ?2 AND ?3)"
                 " AND (?4 IS NULL OR started_at < ?4 OR (started_at = ?4 AND session_id < ?5))"
                 " ORDER BY started_at DESC, session_id DESC LIMIT ?6",
                 SESSION_COLS);
    else
        snprintf(sql, sizeof sql,
                 "SELECT %s FROM sessions WHERE ?1 IS NULL AND started_at BETWEEN ?2 AND ?3"
                 " AND (?4 IS NULL OR started_at < ?4 OR (started_at = ?4 AND session_id < ?5))"
                 " ORDER BY started_at DESC, session_id DESC LIMIT ?6",
                 SESSION_COLS);
    sessions_args_t a = {guest, since, until, after, fetch};
    return run_read(store, sql, bind_sessions, &a, row_session, items, NULL);
}

static void bind_one_text(sqlite3_stmt *st, const void *arg)
{
    bind_text(st, 1, arg);
}

static int sq_session(void *store, const char *session_id, json_t **out)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM sessions WHERE session_id = ?1", SESSION_COLS);
    return run_read(store, sql, bind_one_text, session_id, row_session, NULL, out);
}

typedef struct list_args {
    const char *text; /* session id, status, or NULL */
    const hist_pos_t *after;
    int fetch;
} list_args_t;

static void bind_list(sqlite3_stmt *st, const void *arg)
{
    const list_args_t *a = arg;
    bind_text(st, 1, a->text);
    if (a->after->set) {
        sqlite3_bind_int64(st, 2, a->after->n);
        bind_text(st, 3, a->after->s);
    }
    sqlite3_bind_int(st, 4, a->fetch);
}

static int sq_messages(void *store, const char *session_id, const hist_pos_t *after, int fetch, json_t *items)
{
    static const char sql[] = "SELECT session_id, seq, message_id, sender_guest_id, text, sent_at, delivered_at"
                              " FROM messages WHERE session_id = ?1 AND (?2 IS NULL OR seq > ?2)"
                              " ORDER BY seq LIMIT ?4";
    list_args_t a = {session_id, after, fetch};
    return run_read(store, sql, bind_list, &a, row_message, items, NULL);
}

static int sq_reports(void *store, const char *status, const hist_pos_t *after, int fetch, json_t *items)
{
    static const char by_status[] =
        "SELECT report_id, session_id, reporter_guest_id, reason, created_at, status, closed_at FROM reports"
        " WHERE status = ?1 AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND report_id < ?3))"
        " ORDER BY created_at DESC, report_id DESC LIMIT ?4";
    static const char all[] =
        "SELECT report_id, session_id, reporter_guest_id, reason, created_at, status, closed_at FROM reports"
        " WHERE ?1 IS NULL AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND report_id < ?3))"
        " ORDER BY created_at DESC, report_id DESC LIMIT ?4";
    list_args_t a = {status, after, fetch};
    return run_read(store, status != NULL ? by_status : all, bind_list, &a, row_report, items, NULL);
}

static int sq_audit(void *store, const char *target, const hist_pos_t *after, int fetch, json_t *items)
{
    static const char all[] = "SELECT audit_id, moderator, action, detail, at, target, info FROM audit"
                              " WHERE ?1 IS NULL AND (?2 IS NULL OR at < ?2 OR (at = ?2 AND audit_id < ?3))"
                              " ORDER BY at DESC, audit_id DESC LIMIT ?4";
    static const char by_target[] = "SELECT audit_id, moderator, action, detail, at, target, info FROM audit"
                                    " WHERE target = ?1 AND (?2 IS NULL OR at < ?2 OR (at = ?2 AND audit_id < ?3))"
                                    " ORDER BY at DESC, audit_id DESC LIMIT ?4";
    list_args_t a = {target, after, fetch};
    const char *sql = target != NULL ? by_target : all;
    return run_read(store, sql, bind_list, &a, row_audit, items, NULL);
}

static int sq_close_report(void *store, const char *report_id, int64_t closed_ms)
{
    sq_t *s = store;
    sqlite3_stmt *st = NULL;
    int rc = HIST_ERR_UNAVAILABLE;
    pthread_mutex_lock(&s->wlock);
    /* closing twice keeps the first close time */
    if (sqlite3_prepare_v2(s->wdb,
                           "UPDATE reports SET status = 'closed', closed_at = coalesce(closed_at, ?2)"
                           " WHERE report_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        log_sqlite("prepare close report", s->wdb);
        goto Exit;
    }
    bind_text(st, 1, report_id);
    sqlite3_bind_int64(st, 2, closed_ms);
    if (sqlite3_step(st) != SQLITE_DONE) {
        log_sqlite("close report", s->wdb);
        goto Exit;
    }
    rc = sqlite3_changes(s->wdb) > 0 ? 0 : HIST_ERR_NOT_FOUND;
Exit:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

const hist_backend_t hist_sqlite_backend = {
    .write_batch = sq_write_batch,
    .sessions = sq_sessions,
    .session = sq_session,
    .messages = sq_messages,
    .reports = sq_reports,
    .close_report = sq_close_report,
    .audit = sq_audit,
    .close = sq_close,
};
