/* hub internals shared by its files; nothing outside server/hub includes this. */
#ifndef NEARCHAT_HUB_INTERNAL_H
#define NEARCHAT_HUB_INTERNAL_H
#include <stdio.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../../geo/geo.h"
#include "../../matcher/matcher.h"
#include "../guest/guest.h"
#include "../history/history.h"
#include "../limits/limits.h"
#include "../metrics/metrics.h"
#include "../note/note.h"
#include "../redis/redis.h"
#include "hub.h"

#define HUB_MAX_WORKERS 256
#define HUB_MAX_ID_LEN 64 /* a client message id (protocol.md §5) */
#define HUB_REGISTRY_BUCKETS 4096
/* A token bucket (rates are "count per seconds" pairs from the configuration). */
typedef struct hub_bucket {
    double tokens;
    uint64_t at_ms; /* 0: never used, full */
} hub_bucket_t;

typedef struct hub_worker hub_worker_t;
typedef struct hub_conn hub_conn_t;
/* A feature's handler of one kind of note; `c` is the guest's connection on this worker, or NULL. */
typedef void (*hub_note_cb)(hub_worker_t *hw, hub_conn_t *c, const note_t *n);
typedef struct hub_note_handler {
    hub_note_cb cb;
    bool needs_conn;
} hub_note_handler_t;
struct hub_chat_note;

typedef struct hub_metrics {
    metrics_value_t *guests_new, *guests_resumed, *auth_failures, *consent_refused, *banned;
    metrics_value_t *match_requests, *match_errors, *proposals, *matches, *expired, *declined, *rate_limited;
    metrics_value_t *waiting[4], *redis_down, *history_queued, *history_lag_ms;
    metrics_value_t *msgs_in, *msgs_out, *msgs_delivered, *msgs_queued, *msgs_unavailable, *chat_rate_limited, *reports,
        *msgs_queued_delivered; /* waiting: by the level searched now */
    metrics_value_t *receipt_retries, *wal_stored, *wal_claimed, *guests_reaped;
} hub_metrics_t;

struct hub {
    const config_t *cfg;
    guest_secret_t secret;
    geo_db_t *geo;
    geo_proxies_t *proxies;
    /* per client address: sessions (sio), new guests, chat messages; per
     * guest: connections. Bounded tables shared by the node's workers. */
    limits_t *ip_limits, *guest_limits;
    redis_target_t redis;
    match_config_t match;
    hub_metrics_t m;
    redis_script_t *scripts[3];
    int nworkers;
    atomic_int redis_up[HUB_MAX_WORKERS]; /* per worker: its command connection is up */
    atomic_int workers_started;
    struct offq *offq;    /* the offline queues (RabbitMQ) */
    struct hist *history; /* the history store */
    /* the local bus (bus.c): this node's workers by index, and the prefix of their channels */
    _Atomic(sio_worker_t *) bus[HUB_MAX_WORKERS];
    char bus_prefix[128];
    /* the handlers of the notes the bus delivers, by kind (each feature registers its own) */
    hub_note_handler_t note_handlers[NOTE_KINDS];
};

/*
 * One guest connection: what the CONNECT to / established. Shared by the
 * socket of / (its data) and by every Redis call in flight for it, hence
 * counted references; `root` is NULL once the connection is gone.
 */
typedef struct hub_conn {
    unsigned refs;
    hub_worker_t *hw;
    sio_socket_t *root;
    int accepted;
    char gid[GUEST_ID_LEN + 1];
    char conn_id[96];
    char ip[64];
    int64_t expires;
    int resumed;
    int guest_slot; /* in hub.guest_limits, or LIMITS_UNCOUNTED */
    geo_place_t place;
    /* matching */
    sio_timer_t *widen;
    int widen_stage, widen_scope;
    int waiting_level; /* -1, or the level counted in the waiting gauge */
    int req_scope;     /* the last match:request, asked again when Redis lost it */
    double req_max_km;
    uint64_t widen_t0;     /* loop time of the request */
    sio_timer_t *proposal; /* as the proposed guest: its answer's deadline */
    char proposal_id[GUEST_ID_LEN + 1];
    sio_timer_t *proposing; /* as the requester: a backup deadline */
    char proposing_id[GUEST_ID_LEN + 1];
    /* CONNECTs to /match or /chat that came while / was being answered */
    sio_socket_t *deferred[4];
    int ndeferred;
    hub_bucket_t msg_bucket, typing_bucket;
    int fetching, fetch_again; /* its offline queue is being read */
    struct inbound *inflight;  /* messages handed to the client, awaiting its receipt */
    sio_timer_t *session_end;  /* the live session's expiry */
    char session_id[GUEST_ID_LEN + 1];
    struct hub_conn *hnext; /* registry chain */
    int registered;
    int reannounce; /* its worker was taken for dead: the next hello tells its peer it is back */
} hub_conn_t;

struct hub_worker {
    hub_t *hub;
    sio_worker_t *w;
    int index;
    redis_client_t *cmd, *sub;
    char channel[160];
    uint64_t next_conn;
    hub_conn_t *registry[HUB_REGISTRY_BUCKETS];
    sio_timer_t *touch;
    /* messages this worker sent and has not answered, hashed by key (pending.c) */
    struct pending_msg **pending;
    size_t pending_buckets, pending_count;
    int sends_waiting;           /* chat:message calls to Redis not answered yet */
    int stopping;                /* the worker is going: nothing is retried */
    struct receipt *receipts;    /* receipts not stored in Redis yet (receiving.c) */
    struct hub_wal *wal;         /* the history's write-ahead log reader, on worker 0 (wal.c) */
    geo_proxies_t *banned_cidrs; /* networks banned by moderators */
    sio_timer_t *beat;           /* liveness (nodes.c) */
    redis_client_t *beat_cmd;    /* the beats' own connection (nodes.c) */
    int beating;                 /* a beat is in flight */
    int beaten;                  /* a beat was answered: being unknown since means taken for dead */
};

/* Where moderators' bans are announced to every worker of every node. */
#define HUB_BANS_CHANNEL "nc:bans"

/* receiving.c */
void hub_receipts_stop(hub_worker_t *hw);

/* wal.c: the history's write-ahead log ({nc}:hwal), read on worker 0 of every node */
void hub_wal_start(hub_worker_t *hw);
void hub_wal_stop(hub_worker_t *hw);

/* nodes.c: liveness of workers, and the guests of dead ones */
void hub_nodes_start(hub_worker_t *hw);
void hub_nodes_stop(hub_worker_t *hw);

/* conns.c, the leaf: connections, the registry, emit and ack, shared payload parts, the clock */
hub_conn_t *hub_conn_ref(hub_conn_t *c);
void hub_conn_unref(hub_conn_t *c);
void hub_registry_add(hub_worker_t *hw, hub_conn_t *c);
void hub_registry_remove(hub_worker_t *hw, hub_conn_t *c);
hub_conn_t *hub_registry_find(hub_worker_t *hw, const char *gid);
/** Emits on the socket of namespace `nsp` of the connection, if it is connected there. */
void hub_emit(hub_conn_t *c, const char *nsp, const char *event, json_t *payload);
/** The hub connection behind any socket of a connection whose / was accepted, or NULL. */
hub_conn_t *hub_conn_of(sio_socket_t *s);
/** Answers an ack with {"ok":false,"error":code}. */
void hub_ack_error(sio_socket_t *s, int64_t ack_id, const char *code);
/** Answers an ack with `obj` (stolen). */
void hub_ack(sio_socket_t *s, int64_t ack_id, json_t *obj);
/** The connection's /chat socket, or NULL. */
sio_socket_t *hub_chat_socket(hub_conn_t *c);
/** Writes {"sessionId":sid,"id":id,"seq":seq, how chat:message and chat:delivered payloads begin. */
void hub_chat_payload_head(buf_t *b, const char *sid, const char *id, int64_t seq);
/** The `user-session` payload (takes `distance`). */
/** A distance in km, or null when not known. */
json_t *hub_json_distance(bool known, double km);
json_t *hub_user_session(const char *sid, const char *alias, const char *city, const char *country, json_t *distance,
                         int64_t started_ms, int resumed);
/** A string, or JSON null when it is NULL or empty. */
json_t *hub_json_str_or_null(const char *s);

/* bus.c: notes for the guests of a worker, by kind; in memory between the workers of this node */
void hub_bus_join(hub_worker_t *hw);
void hub_bus_leave(hub_worker_t *hw);
/** The index of this node's worker whose channel is `channel`, or -1 (another node's, or not a worker's). */
int hub_bus_index(const hub_t *h, const char *channel);
/**
 * Registers the handler of a kind (before the workers start). With
 * `needs_conn`, it runs only for a guest connected to this worker; else `c`
 * may be NULL (the guest is not here: a msg goes back as a nack).
 */
void hub_bus_on(hub_t *h, note_kind_t kind, hub_note_cb cb, bool needs_conn);
/** Runs the handler of the note's kind for its guest on this worker. */
void hub_bus_deliver(hub_worker_t *hw, const note_t *n);
/** A note published on this worker's channel (JSON), parsed and delivered. */
void hub_bus_on_published(hub_worker_t *hw, const char *msg, size_t len);
/**
 * Hands a note (note_new) to the worker of `channel` if it is one of this
 * node's, which frees it: 1. Else 0, and the note stays the caller's.
 */
int hub_bus_send_note(hub_worker_t *hw, const char *channel, note_t *n);
/** A delivered or nack note for the worker of the message's sender. */
note_t *hub_note_outcome(note_kind_t kind, const char *sender, const char *sid, const char *id, int64_t seq);
/** Sends a note to a worker channel: through the local bus, else published in Redis. Takes `n`. */
void hub_note_send(hub_worker_t *hw, const char *channel, note_t *n);

/* guests.c: namespace / */
void hub_guests_attach(hub_t *h, sio_server_t *srv);
/** Registers a connection with Redis again (after Redis came back). */
void hub_guest_rehello(hub_conn_t *c);
/** Guarded namespace connect for /match and /chat: only after / was accepted. */
void hub_require_root(sio_socket_t *s, json_t *auth, void *ud);
/** The disconnect handler of /match and /chat (forgets a CONNECT waiting for /). */
void hub_nsp_disconnect(sio_socket_t *s, const char *reason, void *ud);

/* matching.c: namespace /match and the matcher's notifications */
void hub_matching_attach(hub_t *h, sio_server_t *srv);
void hub_matching_conn_gone(hub_conn_t *c);
/** Redis is back: a guest that was waiting asks again (Redis may have lost its queues). */
void hub_matching_redis_back(hub_conn_t *c);

/* bans.c */
void hub_bans_reload(hub_worker_t *hw);
int hub_bans_cover_ip(hub_worker_t *hw, const char *ip);
void hub_bans_on_notice(hub_worker_t *hw, const char *msg, size_t len);

/* chatting.c: namespace /chat, the sender's side */
/* receiving.c: namespace /chat, the recipient's side */
/** A message for a guest of this worker (`c`, NULL when not here): to its client, or back with a nack. */
void hub_chat_on_msg_note(hub_worker_t *hw, hub_conn_t *c, const note_t *n);
void hub_chat_attach(hub_t *h, sio_server_t *srv);
/** Hands a message to the recipient's client; 0, or -1 when it has no /chat here. `from`: its origin's channel. */
int hub_chat_hand_over(hub_conn_t *c, const char *sid, const char *id, const char *sender, const char *text,
                       int64_t seq, int64_t ts, const char *from, uint64_t offq_tag);
/** 1 when a queued copy (`offq_tag`) belongs to a message in flight to the client, which now owns the tag. */
int hub_chat_settle_with_inflight(hub_conn_t *c, const char *sid, const char *sender, const char *id,
                                  uint64_t offq_tag);
/** The guest's /chat is connected (or something was queued for it): hand over what waits in its queue. */
void hub_chat_drain_queue(hub_conn_t *c);
/** The same, on a /chat connect: only when the guest has ever had a message queued. */
void hub_chat_drain_if_queued(hub_conn_t *c);
/** The guest was told of its live session (started at `started_ms`): arm the session's expiry. */
void hub_chat_session_known(hub_conn_t *c, const char *sid, int64_t started_ms);
void hub_chat_worker_stop(hub_worker_t *hw);

/* deps.c: the offline queue and the history store, behind the hub */
typedef void (*hub_queued_cb)(sio_worker_t *w, const char *err, void *ud);
void hub_offq_publish(hub_worker_t *hw, const char *guest_id, const char *body, size_t len, hub_queued_cb cb, void *ud);
/* One queued message (body NULL: the end of the batch, with err set when the fetch failed). */
typedef void (*hub_fetched_cb)(sio_worker_t *w, uint64_t tag, const void *body, size_t len, const char *err, void *ud);
void hub_offq_fetch(hub_worker_t *hw, const char *guest_id, int max, hub_fetched_cb cb, void *ud);
void hub_offq_ack(hub_worker_t *hw, uint64_t tag);
void hub_offq_release(hub_worker_t *hw, uint64_t tag);
void hub_history_session_start(hub_t *h, const char *sid, const char *guest_a, const char *guest_b, hist_place_t geo_a,
                               hist_place_t geo_b, int64_t started_ms);
void hub_history_session_end(hub_t *h, const char *sid, int64_t ended_ms, const char *reason);
void hub_history_report(hub_t *h, const char *report_id, const char *sid, const char *reporter, const char *reason,
                        int64_t created_ms);

/* ---- pending.c: messages sent from this worker and not yet answered ---- */

#define HUB_MAX_ACKS 4

typedef struct pending_msg {
    char key[GUEST_ID_LEN * 2 + HUB_MAX_ID_LEN + 3]; /* sid|sender|id */
    char sid[GUEST_ID_LEN + 1], sender[GUEST_ID_LEN + 1], peer[GUEST_ID_LEN + 1], id[HUB_MAX_ID_LEN + 1];
    hub_conn_t *c; /* the sender's connection (a reference) */
    int64_t acks[HUB_MAX_ACKS];
    int nacks;
    int64_t seq, ts;
    char *text;
    sio_timer_t *timer;
    hub_worker_t *hw;
    char chan[160]; /* the recipient's worker channel */
    int waits;      /* delivery timeouts passed while that worker was alive */
    int queueing;   /* handed to the offline queue: no more live attempts */
    struct pending_msg *next;
} pending_msg_t;

/** Adds `m` (its key set); the table grows to keep chains short however many wait. */
void hub_pending_insert(hub_worker_t *hw, pending_msg_t *m);
/** The message with `key`, or NULL. */
pending_msg_t *hub_pending_find(hub_worker_t *hw, const char *key);
/** Takes `m` out of the table; a message not in it is ignored. */
void hub_pending_remove(pending_msg_t *m);
/** Any message still in the table, or NULL. */
pending_msg_t *hub_pending_any(hub_worker_t *hw);
/** Frees the table itself (empty by then). */
void hub_pending_dispose(hub_worker_t *hw);

#endif
