/*
 * Private structures of the sio module, shared by its files only.
 */
#ifndef NEARCHAT_SIO_INTERNAL_H
#define NEARCHAT_SIO_INTERNAL_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <h2o/http1.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../buf/buf.h"
#include "../check/check.h"
#include "../metrics/metrics.h"
#include "eio_packet.h"
#include "sio.h"
#include "ws.h"

#define SIO_SID_LEN 21 /* one char naming the worker, then 20 random base64url chars */
#define SIO_MAX_WORKERS 64
#define SIO_TIMER_LISTS 64

/* The calls of sio.h on a worker's objects are made on that worker's thread. */
#define SIO_OWNER(w) CHECK(sio_worker_is_current(w))

/* The URL-safe alphabet of session and socket ids. */
extern const char sio_b64url[];

typedef struct sio_route {
    char *path;
    sio_route_cb cb;
    void *ud;
    struct sio_route *next;
} sio_route_t;

typedef struct sio_handler {
    char *event;
    sio_event_cb cb;
    void *ud;
    struct sio_handler *next;
} sio_handler_t;

struct sio_nsp {
    char *name;
    sio_connect_cb on_connect;
    void *on_connect_ud;
    sio_disconnect_cb on_disconnect;
    void *on_disconnect_ud;
    sio_handler_t *handlers;
    struct sio_nsp *next;
};

#define SIO_CLOSE_CODES 16 /* 1000..1015 */

typedef struct sio_metrics {
    metrics_value_t *closed[SIO_CLOSE_CODES];
    metrics_value_t *closed_other; /* any code outside 1000..1015 */
    metrics_value_t *open_polling, *open_websocket;
    metrics_value_t *handoff_poll, *handoff_ws;
    metrics_value_t *packets_in, *packets_out, *zombies, *slow_readers, *handshakes, *bad_requests, *forbidden;
} sio_metrics_t;

typedef struct sio_api_route {
    char *prefix;
    sio_api_cb cb;
    void *ud;
    struct sio_api_route *next;
} sio_api_route_t;

/*
 * The layers of sio, each calling only down: HTTP (http.c, api.c, files.c)
 * hands Engine.IO requests up through `eio`, Engine.IO (engine.c, ws.c)
 * hands connections up through `conn`: Socket.IO's (socket.c), or an
 * Engine.IO application's messages. server.c fills both.
 */
typedef struct sio_poll_handle sio_poll_handle_t;
typedef struct sio_eio_entry {
    int (*session_exists)(sio_worker_t *w, const char *sid);
    void (*poll_get)(sio_worker_t *w, const char *sid, sio_poll_handle_t from);
    void (*poll_post)(sio_worker_t *w, const char *sid, sio_poll_handle_t from, buf_t *body);
    void (*poll_abort)(sio_worker_t *w, const char *sid, sio_poll_handle_t from);
    void (*handshake_polling)(sio_worker_t *w, h2o_req_t *req, const char *addr, int ip_slot);
    void (*accept_ws)(sio_worker_t *w, h2o_socket_t *sock, const char *sid, const char *addr, int ip_slot);
} sio_eio_entry_t;
typedef struct sio_conn_ops {
    void (*open)(eio_session_t *e); /* may be NULL */
    void (*message)(eio_session_t *e, int binary, const uint8_t *data, size_t len);
    void (*closed)(eio_session_t *e, const char *reason); /* may be NULL; only for sessions with e->conn */
} sio_conn_ops_t;

struct sio_server {
    sio_options_t opt;
    sio_eio_entry_t eio;
    sio_conn_ops_t conn;
    char *path;
    char **origins; /* NULL-terminated; NULL: any */
    sio_nsp_t *nsps;
    sio_route_t *routes;
    sio_api_route_t *api_routes;
    sio_static_cb static_cb;
    void *static_ud;
    h2o_globalconf_t h2o_config;
    int nworkers;
    sio_worker_t *workers;
    int port;
    sio_metrics_t m;
    sio_worker_cb worker_start, worker_stop;
    void *worker_ud;
    pthread_barrier_t queues_ready; /* the workers and the starting thread: every queue exists */
    int queues_barrier;             /* queues_ready was made */
};

/*
 * A long-poll GET or a POST held for a session, possibly on another worker
 * than the session's (SO_REUSEPORT spreads connections, not sessions). The
 * session side only ever sees a handle: the worker that holds the h2o
 * request and a token naming it there.
 */
struct sio_poll_handle {
    sio_worker_t *worker;
    uint64_t token;
};

typedef enum sio_msg_kind {
    SIO_MSG_POLL_GET,   /* to the session's worker */
    SIO_MSG_POLL_POST,  /* to the session's worker */
    SIO_MSG_POLL_ABORT, /* to the session's worker: the held GET's request died */
    SIO_MSG_WS_ADOPT,   /* to the session's worker: an upgraded socket to import */
    SIO_MSG_REPLY,      /* to the request's worker */
    SIO_MSG_STOP,       /* to every worker */
    SIO_MSG_CALL,       /* a function another thread wants run on this loop */
} sio_msg_kind_t;

typedef struct sio_msg {
    h2o_multithread_message_t super;
    sio_msg_kind_t kind;
    char sid[SIO_SID_LEN + 1];
    sio_poll_handle_t from;
    int status;
    const char *content_type;
    buf_t body;
    h2o_socket_export_t sock;
    char addr[64];
    void (*call)(sio_worker_t *w, void *arg);
    void *call_arg;
} sio_msg_t;

/* An HTTP request handed to the application (sio_server_route_prefix). */
struct sio_http_request {
    sio_poll_handle_t handle;
    char *method, *path, *query, *authorization;
    char addr[64]; /* the client's address, as sessions see it (trusted proxies applied) */
    buf_t body;
};

/* A request held on the worker that received it, until a reply comes. */
typedef struct sio_pending_req {
    h2o_req_t *req;
    uint64_t token;
    char sid[SIO_SID_LEN + 1];
    sio_worker_t *owner; /* the session's worker */
    int is_get;
    void *guard;                           /* lives in the request's pool; tells us when it dies */
    struct sio_pending_req *next, **pprev; /* chain of its bucket */
} sio_pending_req_t;

/* Buckets of held requests by token; tokens are sequential, so they spread evenly. */
#define SIO_PENDING_BUCKETS 1024

typedef struct sio_session_table {
    eio_session_t **slots;
    size_t cap, count;
} sio_session_table_t;

/*
 * A connection with bytes to write registers here instead of writing at once;
 * its worker writes every registered one from a zero-delay h2o timeout, which
 * runs inside the loop turn after the events that produced the bytes. So all
 * a turn produced for one socket (an ack and an event, a pipeline of Redis
 * commands) leaves in one write, and libh2o runs the write's completion in the
 * same turn, as for any write made from its callbacks.
 */
typedef struct sio_flush {
    struct sio_flush *next, **pprev; /* pprev NULL: not registered */
    void (*run)(struct sio_flush *f);
} sio_flush_t;

/** Registers `f` for this turn's writes (once); on a thread without a worker, runs it at once. */
void sio_flush_later(sio_flush_t *f);
/** Forgets `f` (a connection being freed). */
void sio_flush_cancel(sio_flush_t *f);

struct sio_worker {
    sio_server_t *srv;
    int index;
    pthread_t tid;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_timeout_t ping_interval, ping_timeout, connect_timeout, drain_timeout, upgrade_check;
    h2o_timeout_entry_t drain_entry;
    sio_session_table_t sessions;
    /* Sessions a client closed over polling with no poll held: the poll
     * racing that close on another connection gets the noop that ends it. */
    struct {
        char sid[SIO_SID_LEN + 1];
        uint64_t until;
    } closed_recently[16];
    unsigned closed_next;
    sio_pending_req_t *pending[SIO_PENDING_BUCKETS]; /* held requests on this worker */
    uint64_t next_token;
    atomic_int stopping;
    void *app_data;
    int app_stopped;
    /* one fixed-duration h2o timeout list per distinct duration of sio_timer_t */
    struct {
        uint64_t ms;
        h2o_timeout_t timeout;
    } timer_lists[SIO_TIMER_LISTS];
    int ntimer_lists;
    int stopped;
    /* the writes of this turn (sio_flush_later) */
    h2o_timeout_t flush_timeout;
    h2o_timeout_entry_t flush_entry;
    sio_flush_t *flush_head;
};

/** Makes `w` the worker of the calling thread for sio_flush_later. From the worker's thread. */
void sio_flush_bind(sio_worker_t *w);

/* ---- engine.c ---- */

typedef enum eio_transport { EIO_POLLING = 0, EIO_WEBSOCKET = 1 } eio_transport_t;

struct eio_session {
    char sid[SIO_SID_LEN + 1];
    sio_worker_t *worker;
    eio_transport_t transport;
    int closed;
    int ip_slot;        /* in opt.ip_limits, or LIMITS_UNCOUNTED */
    int upgraded_probe; /* the probe WebSocket answered "2probe" */
    int awaiting_pong;
    int overflowed;  /* more than max_queued waits for the client: closed on the next tick */
    int pong_queued; /* polling: a pong waits for a GET; more pings add none */
    int zombie;
    int client_closed;   /* the client sent close: its pending poll ends with a noop */
    unsigned refs;       /* kept alive while a callback into it runs */
    ws_conn_t *ws;       /* the WebSocket transport */
    ws_conn_t *probe_ws; /* a WebSocket being probed for the upgrade */
    buf_t out;           /* polling: encoded payload waiting for a GET */
    int has_get;
    sio_poll_handle_t get;
    h2o_timeout_entry_t ping_entry;
    h2o_timeout_entry_t connect_entry;
    h2o_timeout_entry_t noop_entry; /* ends a poll held while upgrading */
    char addr[64];
    /* Socket.IO state */
    struct sio_conn *conn;
    struct eio_session *hnext; /* hash chain */
};

/* `ip_slot` is the session's count in opt.ip_limits (limits_acquire), released when it closes. */
eio_session_t *eio_session_new(sio_worker_t *w, eio_transport_t transport, const char *addr, int ip_slot);
eio_session_t *eio_session_find(sio_worker_t *w, const char *sid);
int eio_session_exists(sio_worker_t *w, const char *sid);
void eio_session_close(eio_session_t *e, int code, const char *reason);
void eio_session_send(eio_session_t *e, eio_type_t type, int binary, const void *data, size_t len);
void eio_handle_poll_get(sio_worker_t *w, const char *sid, sio_poll_handle_t from);
void eio_handle_poll_post(sio_worker_t *w, const char *sid, sio_poll_handle_t from, buf_t *body);
void eio_handle_poll_abort(sio_worker_t *w, const char *sid, sio_poll_handle_t from);
void eio_handshake_polling(sio_worker_t *w, h2o_req_t *req, const char *addr, int ip_slot);
void eio_accept_ws(sio_worker_t *w, h2o_socket_t *sock, const char *sid, const char *addr, int ip_slot);
void eio_drain_worker(sio_worker_t *w);
void eio_table_free(sio_worker_t *w);

/* ---- http.c and server.c ---- */

static inline int srv_is_socketio(const sio_server_t *srv)
{
    return srv->opt.engine_on_message == NULL;
}

/** h2o's handler for every request (http.c). */
int sio_http_on_req(h2o_handler_t *self, h2o_req_t *req);
/** Answers a request held on this worker (`token`), if it is still there. Takes the body. */
void sio_complete_local(sio_worker_t *w, uint64_t token, int status, const char *ctype, buf_t *body);
/** Forgets the requests a stopped worker still holds (their h2o requests are gone with its loop). */
void sio_held_requests_free(sio_worker_t *w);
/** Replies to a held request, on whichever worker holds it. Takes the body. */
void sio_poll_reply(sio_worker_t *from, sio_poll_handle_t h, int status, const char *content_type, buf_t *body);
void sio_worker_send(sio_worker_t *to, sio_msg_t *msg);
sio_msg_t *sio_msg_new(sio_msg_kind_t kind);
/** Keeps an h2o request until sio_poll_reply answers it; `sid` may be NULL (an API request). */
sio_pending_req_t *sio_hold_request(sio_worker_t *w, h2o_req_t *req, const char *sid, sio_worker_t *owner, int is_get);

/* ---- api.c ---- */

/* api.c, below http.c: the asynchronous route whose prefix matches `req`, or NULL. */
const sio_api_route_t *sio_api_find(const sio_server_t *srv, const h2o_req_t *req, size_t plen);
/* Hands a request held under `token` (http.c's sio_hold_request) from client `addr` to its route. */
void sio_api_start(const sio_api_route_t *r, sio_worker_t *w, h2o_req_t *req, size_t plen, uint64_t token,
                   const char *addr);
/* The client's address of `req` (http.c): the peer, or the trusted proxies' X-Forwarded-For. */
void sio_client_addr(sio_worker_t *w, h2o_req_t *req, char *out, size_t outlen);
/* Serves a static file for GET or HEAD when one matches; 1 when it answered. */
int sio_static_dispatch(sio_worker_t *w, h2o_req_t *req, size_t plen);
sio_worker_t *sio_worker_of_sid(sio_server_t *srv, const char *sid);

/* ---- socket.c (the Socket.IO layer over a session) ---- */

void sio_conn_open(eio_session_t *e);
void sio_conn_on_message(eio_session_t *e, int binary, const uint8_t *data, size_t len);
void sio_conn_closed(eio_session_t *e, const char *reason);

#endif
