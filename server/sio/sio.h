/*
 * sio: the protocol module. An HTTP server on libh2o's evloop (one loop per
 * worker thread, SO_REUSEPORT listeners) that speaks Engine.IO v4 (HTTP
 * long-polling, WebSocket, and the upgrade between them) and Socket.IO v5
 * (namespaces, events, acks, CONNECT_ERROR, binary attachments).
 *
 * Every libh2o call of the project lives behind this header. Nothing here
 * knows about chat: the application registers namespaces, connect handlers
 * and event handlers, and plain HTTP routes.
 *
 * Threading: handlers of one Engine.IO session always run on the worker
 * thread that owns it; every sio_socket_* call must be made on that thread.
 */
#ifndef NEARCHAT_SIO_H
#define NEARCHAT_SIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../buf/buf.h"
#include "../limits/limits.h"

/* X-Forwarded-For lines handed to resolve_addr at most (the last ones): one
 * per trusted hop is all a walk from the right can use (GEO_XFF_MAX_HOPS). */
#define SIO_XFF_MAX_LINES 16

typedef struct sio_server sio_server_t;
typedef struct sio_nsp sio_nsp_t;
typedef struct sio_socket sio_socket_t;
typedef struct eio_session eio_session_t;

/* Errors of sio_server_* (0 is success). */
enum {
    SIO_ERR_CONFIG = -301, /* an option is out of range */
    SIO_ERR_LISTEN = -302, /* socket/bind/listen failed (errno text in err) */
};

/** A binary attachment of a Socket.IO packet (borrowed, valid during a callback). */
typedef struct sio_bin {
    const uint8_t *data;
    size_t len;
} sio_bin_t;

/** An HTTP response produced by a route handler. */
typedef struct sio_http_response {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "text/plain; charset=utf-8" */
    buf_t body;               /* owned by the module once the handler returns */
} sio_http_response_t;

/**
 * A synchronous route handler, called on a worker thread; must not block.
 * `method` and `path` are NUL-terminated copies valid during the call.
 */
typedef void (*sio_route_cb)(void *ud, const char *method, const char *path, sio_http_response_t *res);

/**
 * Called when a client sends CONNECT to a namespace. `auth` is the CONNECT
 * payload (an object; `{}` when absent), borrowed. The handler must answer,
 * now or later on the same thread, with sio_socket_accept or
 * sio_socket_reject. Events for the namespace are ignored until then.
 */
typedef void (*sio_connect_cb)(sio_socket_t *s, json_t *auth, void *ud);

/**
 * Called for an event. `args` is the array of arguments after the event name
 * (borrowed; placeholders of binary attachments are left as they came).
 * `ack_id` is >= 0 when the client wants an answer through sio_socket_ack.
 */
typedef void (*sio_event_cb)(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins,
                             void *ud);

/**
 * Called when a namespace connection ends (client DISCONNECT, connection
 * closed, server disconnect). The socket is freed right after it returns.
 */
typedef void (*sio_disconnect_cb)(sio_socket_t *s, const char *reason, void *ud);

/**
 * The answer to an emit with ack. `args` is NULL when the connection ended
 * before the client answered.
 */
typedef void (*sio_ack_cb)(sio_socket_t *s, json_t *args, const sio_bin_t *bins, size_t nbins, void *ud);

/**
 * Bare Engine.IO mode: called for every message of a session. The message
 * may be sent back with sio_engine_send.
 */
typedef void (*sio_engine_message_cb)(eio_session_t *e, int binary, const uint8_t *data, size_t len, void *ud);

typedef struct sio_options {
    const char *host;            /* listen address, e.g. "0.0.0.0", "::1" */
    int port;                    /* 0 is refused */
    int workers;                 /* 1..256 */
    const char *path;            /* Engine.IO endpoint, e.g. "/socket.io/" */
    int ping_interval_ms;        /* server ping period */
    int ping_timeout_ms;         /* time a client has to answer a ping */
    int connect_timeout_ms;      /* time to send a Socket.IO CONNECT */
    size_t max_payload;          /* largest message / polling body */
    size_t max_queued;           /* output queued for one connection before it is closed; 0: 4 MiB */
    const char *allowed_origins; /* comma-separated Origin values; NULL: any */
    /* When set, decides the client address of a new session from the direct
     * peer and the X-Forwarded-For header lines (`n` values, lines[i] of
     * lens[i] bytes, not NUL-terminated, in the order received; the last
     * SIO_XFF_MAX_LINES of them when there are more); writes it into `out`.
     * Without it, the client address is the peer. */
    void (*resolve_addr)(void *ud, const char *peer, const char *const *lines, const size_t *lens, size_t n, char *out,
                         size_t outlen);
    void *resolve_addr_ud;
    /* When set, bounds new sessions per client address: LIMITS_HANDSHAKE
     * tokens and max_conns open sessions (answered 429 past either). */
    limits_t *ip_limits;
    /* When set, the server is a bare Engine.IO server: no Socket.IO layer. */
    sio_engine_message_cb engine_on_message;
    void *engine_ud;
} sio_options_t;

/**
 * Creates a server (nothing listens yet). Returns NULL with a reason in
 * `err` when an option is invalid.
 */
sio_server_t *sio_server_new(const sio_options_t *opt, char *err, size_t errlen);

/** Frees a server that is not running (after sio_server_run returned). */
void sio_server_free(sio_server_t *srv);

/** Registers namespace `name` ("/" or "/x"); returns the existing one on a repeat. Before run only. */
sio_nsp_t *sio_server_of(sio_server_t *srv, const char *name);

/** Sets the connect handler of a namespace. Without one, every CONNECT is accepted. Before run only. */
void sio_nsp_on_connect(sio_nsp_t *nsp, sio_connect_cb cb, void *ud);

/** Registers the handler of event `event` (copied). Before run only. */
void sio_nsp_on(sio_nsp_t *nsp, const char *event, sio_event_cb cb, void *ud);

/** Sets the disconnect handler of a namespace. Before run only. */
void sio_nsp_on_disconnect(sio_nsp_t *nsp, sio_disconnect_cb cb, void *ud);

/** Adds a plain HTTP route for an exact path (copied). Before run only. */
void sio_server_route(sio_server_t *srv, const char *path, sio_route_cb cb, void *ud);

/**
 * A file served from memory that outlives the server (see sio_server_static).
 * `etag` is quoted; `gzip` is NULL when the file is not worth compressing;
 * `csp` is the Content-Security-Policy of a page, NULL for other files.
 */
typedef struct sio_static_file {
    const char *content_type;
    const char *cache_control;
    const char *etag;
    const char *csp;
    const char *body;
    size_t len;
    const char *gzip;
    size_t gzip_len;
} sio_static_file_t;
/** Finds the file for a path (not NUL-terminated), or returns NULL. Any worker thread; must not block. */
typedef const sio_static_file_t *(*sio_static_cb)(void *ud, const char *path, size_t len);

/**
 * Serves GET and HEAD requests that no route took from `cb`, with ETag
 * revalidation and gzip when the client accepts it. Before run only.
 */
void sio_server_static(sio_server_t *srv, sio_static_cb cb, void *ud);

/** An HTTP request held for an asynchronous answer (see sio_server_route_prefix). */
typedef struct sio_http_request sio_http_request_t;
typedef void (*sio_api_cb)(void *ud, sio_http_request_t *req);
/**
 * Routes every path that starts with `prefix` (copied) to `cb`, on the worker
 * that received it. The handler must answer, now or later and from any
 * thread, with sio_http_respond exactly once. Before run only.
 */
void sio_server_route_prefix(sio_server_t *srv, const char *prefix, sio_api_cb cb, void *ud);
/** The request's method, path (without the query), query string (without '?', "" when none). Valid until answered. */
const char *sio_http_method(const sio_http_request_t *r);
const char *sio_http_path(const sio_http_request_t *r);
const char *sio_http_query(const sio_http_request_t *r);
/** The Authorization header's value, "" when absent. */
const char *sio_http_authorization(const sio_http_request_t *r);
/** The client's address (X-Forwarded-For applied as for sessions, see resolve_addr). */
const char *sio_http_client_addr(const sio_http_request_t *r);
/** The request body (complete). */
const buf_t *sio_http_body(const sio_http_request_t *r);
/**
 * Answers and frees the request (takes `body`; `content_type` must be a
 * static string). Callable from any thread. A client that went away first is
 * simply not answered.
 */
void sio_http_respond(sio_http_request_t *r, int status, const char *content_type, buf_t *body);

/**
 * Binds the listeners (one per worker, SO_REUSEPORT), starts the workers and
 * returns 0 while they serve, or a negative error with a reason in `err`.
 */
int sio_server_start(sio_server_t *srv, char *err, size_t errlen);

/** The port actually bound (useful when port was chosen by the system). */
int sio_server_port(sio_server_t *srv);

/**
 * Drains: stops accepting, closes every WebSocket with 1001 and ends every
 * polling session, then stops the workers. Returns when all worker threads
 * have exited, or after `timeout_ms` (then returns -1). Call from the thread
 * that called sio_server_start, never from a worker.
 */
int sio_server_stop(sio_server_t *srv, int timeout_ms);

/* ---- Socket.IO sockets (one per client and namespace) ---- */

/** Accepts a pending CONNECT: the client gets the CONNECT packet. */
void sio_socket_accept(sio_socket_t *s);

/** Refuses a pending CONNECT with CONNECT_ERROR carrying `data` (stolen; an object). The socket is freed. */
void sio_socket_reject(sio_socket_t *s, json_t *data);

/** Emits `event` with `args` (a JSON array, borrowed; NULL for none). */
void sio_socket_emit(sio_socket_t *s, const char *event, json_t *args);

/** Emits with binary attachments referenced by placeholders in `args`. */
void sio_socket_emit_bin(sio_socket_t *s, const char *event, json_t *args, const sio_bin_t *bins, size_t nbins);

/** Emits and asks the client for an ack; `cb` is called exactly once. */
void sio_socket_emit_ack(sio_socket_t *s, const char *event, json_t *args, sio_ack_cb cb, void *ud);

/**
 * emit and emit_ack (cb NULL: no ack wanted) with the arguments already
 * written as JSON: `args` is the text between the brackets of the packet's
 * array, after the event name (`{"a":1}`, `1,"x"`; "" for none). `event` is
 * written as it is: plain ASCII without quotes or backslashes. For hot paths
 * that need no JSON tree.
 */
void sio_socket_emit_text(sio_socket_t *s, const char *event, const char *args, size_t len, sio_ack_cb cb, void *ud);
/** Answers an ack id with arguments already written as JSON (as in sio_socket_emit_text). */
void sio_socket_ack_text(sio_socket_t *s, int64_t ack_id, const char *args, size_t len);

/** Answers an event's ack id with `args` (a JSON array, borrowed). */
void sio_socket_ack(sio_socket_t *s, int64_t ack_id, json_t *args);

/** Answers an ack id with binary attachments (a BINARY_ACK). */
void sio_socket_ack_bin(sio_socket_t *s, int64_t ack_id, json_t *args, const sio_bin_t *bins, size_t nbins);

/** Disconnects the client from this namespace (DISCONNECT packet); the disconnect handler runs. */
void sio_socket_disconnect(sio_socket_t *s);

/** Closes the whole Engine.IO connection of this socket (all namespaces). */
void sio_socket_close_connection(sio_socket_t *s);

/** The Socket.IO id of this socket (NUL-terminated, owned by the socket). */
const char *sio_socket_id(const sio_socket_t *s);

/** The namespace name of this socket. */
const char *sio_socket_nsp(const sio_socket_t *s);

/** The socket of the same connection in namespace `nsp`, or NULL when not connected there. */
sio_socket_t *sio_socket_sibling(sio_socket_t *s, const char *nsp);

/** Like sio_socket_sibling, but also a socket whose CONNECT is still being answered. */
sio_socket_t *sio_socket_sibling_pending(sio_socket_t *s, const char *nsp);
/** 1 when the socket's CONNECT was accepted. */
int sio_socket_connected(const sio_socket_t *s);
/** The client's IP address as text (direct peer). */
const char *sio_socket_remote_addr(const sio_socket_t *s);

/** Application data attached to the socket. */
void sio_socket_set_data(sio_socket_t *s, void *data);
void *sio_socket_data(const sio_socket_t *s);

/* ---- bare Engine.IO ---- */

/** Sends one message on an Engine.IO session (bare mode). */
void sio_engine_send(eio_session_t *e, int binary, const void *data, size_t len);

/* ---- workers: the application's own state, timers and streams on a loop ---- */

typedef struct sio_worker sio_worker_t;
typedef struct sio_timer sio_timer_t;
typedef struct sio_stream sio_stream_t;

/** Called on a worker thread: after its loop is set up (start), or once its sessions are drained (stop). */
typedef void (*sio_worker_cb)(sio_worker_t *w, void *ud);
/**
 * Registers per-worker hooks. `start` runs on each worker thread before it
 * serves; `stop` runs on it when the server stops, after every session was
 * closed (their disconnect handlers ran), while the loop still runs a little
 * so that what `stop` closes can finish. Before run only.
 */
void sio_server_on_worker(sio_server_t *srv, sio_worker_cb start, sio_worker_cb stop, void *ud);
/** The worker that runs this socket's handlers. */
sio_worker_t *sio_socket_worker(const sio_socket_t *s);
/** 0 .. workers-1. */
int sio_worker_index(const sio_worker_t *w);
/** Application data of a worker (set in the start hook). */
void sio_worker_set_data(sio_worker_t *w, void *data);
void *sio_worker_data(const sio_worker_t *w);
/**
 * Runs fn(w, arg) on worker w's loop, soon. Callable from any thread (this is
 * how blocking clients on their own threads hand results to a loop). Calls
 * posted after the worker stopped are never run: `arg` must not own
 * anything that matters at shutdown. Never fails.
 */
void sio_worker_post(sio_worker_t *w, void (*fn)(sio_worker_t *w, void *arg), void *arg);
/**
 * True on the thread that runs `w`'s loop. The calls on a worker's sockets,
 * timers and streams check it (a CHECK, in every build): they must be made
 * there.
 */
bool sio_worker_is_current(const sio_worker_t *w);
/** Milliseconds of the worker loop's clock (monotonic, cached per loop turn). */
uint64_t sio_worker_now(const sio_worker_t *w);

typedef void (*sio_timer_cb)(sio_timer_t *t, void *ud);
/** A one-shot timer on worker `w`; never fails (out of memory aborts). */
sio_timer_t *sio_timer_new(sio_worker_t *w, sio_timer_cb cb, void *ud);
/** Arms (or re-arms) the timer to fire once after `ms`. Durations are rounded up to 10 ms. */
void sio_timer_start(sio_timer_t *t, uint64_t ms);
/** Disarms the timer; harmless when it is not armed. */
void sio_timer_stop(sio_timer_t *t);
int sio_timer_armed(const sio_timer_t *t);
/** Disarms and frees; NULL is accepted. Safe from inside the timer's own callback. */
void sio_timer_free(sio_timer_t *t);

/** Callbacks of an outgoing TCP stream; `err` is NULL on success. */
typedef struct sio_stream_callbacks {
    void (*on_connect)(sio_stream_t *st, const char *err, void *ud);
    /* bytes arrived; they are consumed when the callback returns */
    void (*on_read)(sio_stream_t *st, const void *data, size_t len, void *ud);
    /* the connection failed or the peer closed it; the stream is freed right after */
    void (*on_close)(sio_stream_t *st, const char *err, void *ud);
} sio_stream_callbacks_t;
/**
 * Connects to `addr` (a numeric address, already resolved) from worker `w`,
 * without blocking. Exactly one of on_connect(err NULL) or on_close(err)
 * follows. Never returns NULL.
 */
sio_stream_t *sio_stream_connect(sio_worker_t *w, const struct sockaddr *addr, unsigned addrlen,
                                 const sio_stream_callbacks_t *cbs, void *ud);
/** Queues bytes (copied); they leave in order as the socket accepts them. */
void sio_stream_write(sio_stream_t *st, const void *data, size_t len);
/** Closes and frees the stream; no callback follows. Safe from inside its callbacks. */
void sio_stream_close(sio_stream_t *st);

#endif
