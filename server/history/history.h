/*
 * history: what moderators can search later. Every delivered message, every
 * session (its two guests, where they were, start, end, how it ended), every
 * report and the audit log of moderator calls, in one interface with two
 * backends: SQLite (`sqlite:PATH`, WAL; the embedded default) and MongoDB
 * (`mongodb://...`, mongo-c-driver, indexes created at open, write concern
 * from the URL, w:majority by default).
 *
 * Writes are asynchronous: hist_put_* copy their arguments into a queue and
 * return at once, from any thread, never blocking (a loop calls them). One
 * writer thread drains the queue in batches, idempotently (a message is
 * identified by session id + sender guest id + client message id; writing
 * it twice stores it once), and retries with backoff while the store is
 * down: nothing queued is dropped. Reads block and must be called off the
 * event loops (moderator API worker threads, tests).
 */
#ifndef NEARCHAT_HISTORY_H
#define NEARCHAT_HISTORY_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct hist hist_t;

enum {
    HIST_ERR_URL = -701,         /* not sqlite:PATH nor mongodb://... */
    HIST_ERR_OPEN = -702,        /* the store cannot be opened or prepared */
    HIST_ERR_UNAVAILABLE = -703, /* a read failed because the store is down */
    HIST_ERR_CURSOR = -704,      /* a cursor that this query did not make (tampered, or of another query) */
    HIST_ERR_NOT_FOUND = -705,
    HIST_ERR_INVALID = -706, /* bad arguments (limit out of 1..500, ...) */
};

const char *hist_strerror(int err);

/**
 * Opens the store named by `url` and starts the writer thread. `cursor_key`
 * (>= 32 bytes, borrowed during the call) signs pagination cursors so that a
 * cursor cannot be forged or replayed against another query. Returns NULL
 * with a reason in `err` and HIST_ERR_URL, HIST_ERR_OPEN (also for a
 * mongodb:// URL the driver cannot parse) or HIST_ERR_INVALID (a key shorter
 * than 32 bytes) in `*code`; on success `*code` is 0.
 * A MongoDB server that is down at open is not an error: writes wait and
 * retry, reads answer HIST_ERR_UNAVAILABLE, and the indexes are created by the
 * writer once the server answers. Unless the URL sets them, MongoDB gets
 * serverSelectionTimeoutMS=5000 and connectTimeoutMS=3000.
 */
hist_t *hist_open(const char *url, const void *cursor_key, size_t keylen, int *code, char *err, size_t errlen);
/**
 * Writes what is queued (waiting up to `drain_ms` for a store that is down;
 * what it still holds then is dropped and logged with its count), stops the
 * writer and frees. NULL is ignored.
 */
void hist_close(hist_t *h, int drain_ms);

/* ---- writes (copy their arguments, never block, any thread) ---- */

typedef struct hist_place {
    const char *city;    /* NULL when unknown */
    const char *country; /* ISO alpha-2, NULL when unknown */
} hist_place_t;

/** A session began: its two guests (a requested, b accepted) and where each was. Idempotent (the first start wins). */
void hist_put_session_start(hist_t *h, const char *session_id, const char *guest_a, const char *guest_b,
                            hist_place_t geo_a, hist_place_t geo_b, int64_t started_ms);
/** A session ended; `reason` is "left", "reported" or "expired". Idempotent (the first end wins). */
void hist_put_session_end(hist_t *h, const char *session_id, int64_t ended_ms, const char *reason);
/** A delivered message. `text` is UTF-8, up to 4096 bytes. Idempotent by (session, sender, message id). */
void hist_put_message(hist_t *h, const char *session_id, int64_t seq, const char *message_id,
                      const char *sender_guest_id, const char *text, int64_t sent_ms, int64_t delivered_ms);
/**
 * hist_put_message, returning the row's ticket: it is stored once
 * hist_stored_count() >= ticket (writes are stored in the order they were
 * queued, each only after every write queued before it). Never fails.
 */
uint64_t hist_put_message_ticket(hist_t *h, const char *session_id, int64_t seq, const char *message_id,
                                 const char *sender_guest_id, const char *text, int64_t sent_ms, int64_t delivered_ms);

/** How many writes have been stored since hist_open; any thread. */
uint64_t hist_stored_count(hist_t *h);
/** A report; `report_id` is chosen by the caller (idempotent by it). */
void hist_put_report(hist_t *h, const char *report_id, const char *session_id, const char *reporter_guest_id,
                     const char *reason, int64_t created_ms);
/**
 * A moderator call: who (a key fingerprint, never the key), what (method and
 * path, parameters), the guest id or address it was about (`target`, may be
 * NULL) and what it did (`info`, a JSON object's text or NULL), when. Every
 * string is copied; queued, never fails.
 */
void hist_put_audit(hist_t *h, const char *moderator, const char *action, const char *detail, const char *target,
                    const char *info, int64_t at_ms);

/** Writes queued and not yet stored, and the age in ms of the oldest one (0 when none): the lag. */
void hist_backlog(hist_t *h, size_t *queued, int64_t *oldest_age_ms);
/** Transactions (SQLite) or bulks (MongoDB) written so far: writes are grouped, see HIST_COMMIT_INTERVAL_MS. */
uint64_t hist_batches(hist_t *h);
/** Blocks until everything queued before the call is stored, or `timeout_ms` passes; 0 or -1. For tests and drain. */
int hist_flush(hist_t *h, int timeout_ms);

/* ---- reads (block; off the event loops) ----
 * Lists are JSON objects {"items": [...], "nextCursor": string|null} in the
 * shapes of protocol.md §6 (session, message, report); newest first, except
 * messages which come in seq order. `limit` is 1..500; `cursor` is NULL or a
 * nextCursor this same query returned (else HIST_ERR_CURSOR). On success
 * *out is a new reference; on failure it is left alone. Reports carry
 * "closedAt" (null while open) besides the fields of §6. A session whose start
 * was not stored (only its end) is found by hist_session, never in lists.
 * Writes a backend refuses for good (a constraint, a MongoDB write error
 * other than a duplicate key) are logged and skipped rather than retried.
 */

/** Sessions where `guest_id` took part (NULL: any guest), started in [since_ms, until_ms] (0: open bound). */
int hist_sessions(hist_t *h, const char *guest_id, int64_t since_ms, int64_t until_ms, int limit, const char *cursor,
                  json_t **out);
/** One session object, or HIST_ERR_NOT_FOUND. */
int hist_session(hist_t *h, const char *session_id, json_t **out);
/** The messages of a session in seq order. */
int hist_messages(hist_t *h, const char *session_id, int limit, const char *cursor, json_t **out);
/** Reports with status "open" or "closed" (NULL: both). */
int hist_reports(hist_t *h, const char *status, int limit, const char *cursor, json_t **out);
/**
 * Closes a report (idempotent: closing again keeps the first closedAt);
 * HIST_ERR_NOT_FOUND when there is none with that id. Synchronous: it first
 * waits (up to 2 s) for the queue, where the report may still be.
 */
int hist_close_report(hist_t *h, const char *report_id, int64_t closed_ms);
/**
 * The audit log, newest first: {"moderator", "action", "detail", "target",
 * "info", "at"} ("target" and "info" null when not written). `target` NULL:
 * every entry; else only those about it (matched exactly: the caller
 * canonicalises addresses). The cursor belongs to the target it was made for.
 */
int hist_audit(hist_t *h, const char *target, int limit, const char *cursor, json_t **out);

#endif
