/*
 * chat: what two guests of a session share across nodes, kept in Redis by
 * one Lua script (chat.lua, compiled in): message numbers (seq, per session,
 * from 1, atomic across nodes), idempotent re-sends by the client's message
 * id, delivery status (pending, queued, delivered), relayed typing and read
 * marks, presence, and the end of a session. Notifications for a guest go
 * to its worker's channel, like the matcher's.
 */
#ifndef NEARCHAT_CHAT_H
#define NEARCHAT_CHAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../redis/redis.h"

/** The script with its SHA; initialised by chat_init (once, before the workers start). */
extern redis_script_t chat_script;
void chat_init(void);

/** 1 when `s` (len bytes) is well-formed UTF-8 with no NUL and no overlong or surrogate forms. */
int chat_utf8_valid(const char *s, size_t len);

/** The script's operations, each with its own answer (chat_result_t). */
typedef enum chat_op {
    CHAT_OP_SEND,
    CHAT_OP_STATUS,
    CHAT_OP_STATE,
    CHAT_OP_DELIVERED,
    CHAT_OP_RELAY,
    CHAT_OP_END,
    CHAT_OP_PRESENCE,
    CHAT_OP_NOTIFY,
} chat_op_t;

/*
 * What a call answered. Strings are never NULL ("" when not given) and are
 * borrowed for the callback.
 */
typedef struct chat_result {
    const char *err;          /* NULL, a protocol error code ("not_in_session"), or "unavailable" */
    bool dup;                 /* send: the id was numbered before (a re-send) */
    bool gone;                /* status, state, delivered: the message's record expired */
    bool none;                /* presence: the guest has no live session, or it has no peer */
    int64_t seq, ts;          /* send */
    const char *msg_status;   /* send (dup), status, state: the message's status; delivered: the status before */
    const char *peer;         /* send, relay, end: the peer's guest id */
    const char *peer_channel; /* send, relay: its worker's channel, "" when it is nowhere */
    const char *sid;          /* presence: the live session */
} chat_result_t;
typedef void (*chat_cb)(const chat_result_t *r, void *ud);

/** The typed answer of `op` from the script's strings (what each call's callback gets). */
void chat_result_of(chat_op_t op, const redis_strings_t *s, chat_result_t *out);

/*
 * Each call returns 0 and later calls `cb` once, or REDIS_CLIENT_ERR_DOWN at
 * once without calling it; `cb` may be NULL.
 */

/** Numbers a message: seq, ts, peer and peer_channel (dup: the status too); err not_in_session. */
int chat_send(redis_client_t *c, const char *sid, const char *sender, const char *id, int ttl_s, int64_t ts_ms,
              chat_cb cb, void *ud);
/** Moves a message's status forward ("queued", "delivered"); msg_status is the status now, or gone. */
int chat_set_status(redis_client_t *c, const char *sid, const char *sender, const char *id, const char *status,
                    chat_cb cb, void *ud);
/** Reads a message's status (msg_status), or gone once its record expired. */
int chat_state(redis_client_t *c, const char *sid, const char *sender, const char *id, chat_cb cb, void *ud);
/**
 * The recipient acked: marks it delivered and, in the same atomic step,
 * appends the message to the history's write-ahead log (KEYS_WAL, read
 * by hub/wal.c). With `quiet` (the sender is on this node, whose worker the
 * caller tells itself) that step is a MULTI/EXEC of the record, its life
 * (`ttl_s`) and the log entry; else chat.lua does it and tells the sender's
 * worker, answering the status before (msg_status), or gone once the
 * record expired (the log entry is written all the same).
 */
int chat_delivered(redis_client_t *c, const char *sid, const char *sender, const char *id, int64_t seq, int64_t ts,
                   const char *text, int64_t delivered_ms, int quiet, int ttl_s, chat_cb cb, void *ud);
/**
 * For typing and read marks, which the caller sends on: checks that `guest`
 * is in the session and answers its peer and peer_channel; err not_in_session.
 */
int chat_relay(redis_client_t *c, const char *sid, const char *guest, chat_cb cb, void *ud);
/** Ends the session for both ("left", "reported", "expired"); answers the peer; err not_in_session. */
int chat_end(redis_client_t *c, const char *sid, const char *guest, const char *reason, int ttl_s, chat_cb cb,
             void *ud);
/** Tells the peer of the guest's live session that the guest came (1) or went (0); sid, or none. */
int chat_presence(redis_client_t *c, const char *guest, int online, chat_cb cb, void *ud);

/** Publishes `json` (an object's text, with "t") on the channel of the worker that holds `guest`, if any. */
int chat_notify(redis_client_t *c, const char *guest, const char *json, chat_cb cb, void *ud);

/*
 * One entry of the write-ahead log: the field "m" holds
 * "<sid>|<seq>|<id>|<from>|<ts>|<dts>|<text>". Only the text may hold '|'
 * (a message id with one is refused), so it is last and taken whole. One
 * field instead of seven makes XADD and XREADGROUP cheaper for Redis and
 * the reply smaller for the reader.
 */
#define CHAT_WAL_FIELD "m"
typedef struct chat_wal_entry {
    char sid[32], id[72], from[32];
    long long seq, ts, dts;
    const char *text; /* points into the parsed value */
} chat_wal_entry_t;
/** Parses an "m" value (NUL-terminated); 0, or -1 when it is not one. */
int chat_wal_parse(const char *value, chat_wal_entry_t *out);

#endif
