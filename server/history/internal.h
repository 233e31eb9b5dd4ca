/*
 * history internals: the queued writes, what a backend provides, the JSON
 * shapes both backends return, and the signed pagination cursors. Private to
 * server/history (and its unit test).
 */
#ifndef NEARCHAT_HISTORY_INTERNAL_H
#define NEARCHAT_HISTORY_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "history.h"

/* Writes per transaction (SQLite) or per bulk (MongoDB). */
#define HIST_BATCH_MAX 4096
/* At most one transaction or bulk per this many ms, unless a full batch waits (group commit). */
#define HIST_COMMIT_INTERVAL_MS 200
/* How long hist_close_report waits for the queue (its report may still be in it). */
#define HIST_CLOSE_REPORT_FLUSH_MS 2000

typedef enum hist_wkind {
    HIST_W_SESSION_START,
    HIST_W_SESSION_END,
    HIST_W_MESSAGE,
    HIST_W_REPORT,
    HIST_W_AUDIT
} hist_wkind_t;

/*
 * One queued write. Every string is an owned copy, NULL where unused or
 * unknown. Which fields a kind uses:
 *   session start: session_id, guest (a), guest_b, city_a..country_b, t1 = started
 *   session end:   session_id, reason, t1 = ended
 *   message:       session_id, key = message id, guest = sender, text, seq, t1 = sent, t2 = delivered
 *   report:        session_id, key = report id, guest = reporter, reason, t1 = created
 *   audit:         key = audit id (made at put time so retries stay idempotent),
 *                  guest = moderator, action, detail, guest_b = target (a guest id or
 *                  address the call was about), text = info (a JSON object's text), t1 = at
 */
typedef struct hist_write {
    struct hist_write *next;
    hist_wkind_t kind;
    int64_t queued_ms; /* monotonic clock */
    char *session_id, *key, *guest, *guest_b;
    char *city_a, *country_a, *city_b, *country_b;
    char *reason, *text, *action, *detail;
    int64_t seq, t1, t2;
} hist_write_t;

/* A keyset position: where the previous page ended (set == 0: the first page). */
typedef struct hist_pos {
    int set;
    int64_t n;     /* startedAt, seq, createdAt or at */
    const char *s; /* sessionId, reportId or audit id; NULL for messages */
} hist_pos_t;

/*
 * A backend. Reads append up to `fetch` items (the caller asks for one more
 * than its limit, to know whether there is a next page) to `items`, in the
 * list's order, after `after`. They return 0, HIST_ERR_UNAVAILABLE or
 * HIST_ERR_NOT_FOUND. Audit items carry an extra "id" (the tie breaker of
 * their position) that the caller removes.
 */
typedef struct hist_backend {
    /* Stores a batch, idempotently; 0, or -1 when the store failed (the whole batch is then retried). */
    int (*write_batch)(void *store, hist_write_t **w, int n);
    int (*sessions)(void *store, const char *guest, int64_t since, int64_t until, const hist_pos_t *after, int fetch,
                    json_t *items);
    int (*session)(void *store, const char *session_id, json_t **out);
    int (*messages)(void *store, const char *session_id, const hist_pos_t *after, int fetch, json_t *items);
    int (*reports)(void *store, const char *status, const hist_pos_t *after, int fetch, json_t *items);
    int (*close_report)(void *store, const char *report_id, int64_t closed_ms);
    /* `target` NULL: every entry; else only those whose target it is */
    int (*audit)(void *store, const char *target, const hist_pos_t *after, int fetch, json_t *items);
    void (*close)(void *store);
} hist_backend_t;

/* Opens `path`; returns the store, or NULL with a reason in `err`. */
void *hist_sqlite_open(const char *path, char *err, size_t errlen);
extern const hist_backend_t hist_sqlite_backend;
/* Opens the mongodb:// `url`; a server that is down is not an error. NULL with a reason in `err`. */
void *hist_mongo_open(const char *url, char *err, size_t errlen);
extern const hist_backend_t hist_mongo_backend;

/* ---- JSON shapes (rows.c, protocol.md §6); every function returns a new object and never fails ---- */

json_t *hist_json_session(const char *session_id, const char *guest_a, const char *guest_b, const char *city_a,
                          const char *country_a, const char *city_b, const char *country_b, int has_started,
                          int64_t started_ms, int has_ended, int64_t ended_ms, const char *end_reason);
json_t *hist_json_message(const char *session_id, int64_t seq, const char *message_id, const char *sender,
                          const char *text, int64_t sent_ms, int64_t delivered_ms);
json_t *hist_json_report(const char *report_id, const char *session_id, const char *reporter, const char *reason,
                         int64_t created_ms, const char *status, int has_closed, int64_t closed_ms);
json_t *hist_json_audit(const char *audit_id, const char *moderator, const char *action, const char *detail,
                        const char *target, const char *info, int64_t at_ms);
/* A string or JSON null when `s` is NULL. */
json_t *hist_json_str(const char *s);

/* ---- cursors (cursor.c) ---- */

/*
 * A cursor is "<payload>.<mac>", both base64url without padding: the payload
 * is the compact JSON of the position, the mac an HMAC-SHA256 over the query's
 * description and the payload. Returns a malloc'd string; never fails.
 */
char *hist_cursor_make(const void *key, size_t keylen, const char *query, const json_t *position);
/* The position (a new reference) if `cursor` was made for `query` with `key`; NULL otherwise. */
json_t *hist_cursor_read(const void *key, size_t keylen, const char *query, const char *cursor);

/* Milliseconds of CLOCK_MONOTONIC. */

#endif
