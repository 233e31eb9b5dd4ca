/*
 * The HTTP side of the sio module: worker threads with one h2o evloop each,
 * SO_REUSEPORT listeners, request routing, and the messages that carry
 * long-polling requests and upgraded sockets to the worker that owns their
 * session.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../log/log.h"
#include "internal.h"

/* ---- small helpers ---- */

static void peer_addr(h2o_conn_t *conn, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    if (len == 0 || getnameinfo((struct sockaddr *)&ss, len, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, outlen, "unknown");
}

/* The client's address: the peer, or what the application makes of the peer
 * and X-Forwarded-For when it resolves addresses itself (trusted proxies). */
static void client_addr(sio_worker_t *w, h2o_req_t *req, char *out, size_t outlen)
{
    peer_addr(req->conn, out, outlen);
    if (w->srv->opt.resolve_addr == NULL)
        return;
    char peer[64], xff[512];
    snprintf(peer, sizeof(peer), "%s", out);
    xff[0] = '\0';
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        snprintf(xff, sizeof(xff), "%.*s", (int)(v.len < sizeof(xff) ? v.len : sizeof(xff) - 1), v.base);
    }
    w->srv->opt.resolve_addr(w->srv->opt.resolve_addr_ud, peer, i >= 0 ? xff : NULL, out, outlen);
}

static h2o_iovec_t find_header(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* Finds `name` in the query string; returns its raw value or a NULL base. */
static h2o_iovec_t query_param(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init(NULL, 0);
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0)
            return eq ? h2o_iovec_init(eq + 1, (size_t)(stop - eq - 1)) : h2o_iovec_init("", 0);
        q = stop + 1;
    }
    return h2o_iovec_init(NULL, 0);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static void send_text(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = status_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_send_inline(req, body, len);
}

static void send_eio_error(sio_worker_t *w, h2o_req_t *req, int status, int code, const char *message)
{
    char tmp[128];
    int n = snprintf(tmp, sizeof(tmp), "{\"code\":%d,\"message\":\"%s\"}", code, message);
    metrics_inc(status == 403 ? w->srv->m.forbidden : w->srv->m.bad_requests);
    send_text(req, status, "application/json", tmp, (size_t)n);
}

static int origin_allowed(sio_server_t *srv, h2o_iovec_t origin)
{
    if (srv->origins == NULL || origin.base == NULL)
        return 1; /* no list, or not a browser: Origin is a browser's promise */
    for (char **o = srv->origins; *o != NULL; o++)
        if (strlen(*o) == origin.len && memcmp(*o, origin.base, origin.len) == 0)
            return 1;
    return 0;
}

sio_worker_t *sio_worker_of_sid(sio_server_t *srv, const char *sid)
{
    const char *p = strchr(sio_b64url, sid[0]);
    if (sid[0] == '\0' || p == NULL || p - sio_b64url >= srv->nworkers)
        return NULL;
    return &srv->workers[p - sio_b64url];
}

void sio_worker_send(sio_worker_t *to, sio_msg_t *msg)
{
    h2o_multithread_send_message(&to->receiver, &msg->super);
}

sio_msg_t *sio_msg_new(sio_msg_kind_t kind)
{
    sio_msg_t *m = buf_xcalloc(1, sizeof(*m));
    m->kind = kind;
    return m;
}

/* ---- held requests ---- */

typedef struct req_guard {
    sio_pending_req_t *p;
    sio_worker_t *w;
} req_guard_t;

static void unlink_pending(sio_worker_t *w, sio_pending_req_t *p)
{
    *p->pprev = p->next;
    if (p->next != NULL)
        p->next->pprev = p->pprev;
}

/* The h2o request died (client gone) while we held it. */
static void on_guard_dispose(void *_g)
{
    req_guard_t *g = _g;
    sio_pending_req_t *p = g->p;
    if (p == NULL)
        return;
    unlink_pending(g->w, p);
    if (p->is_get) {
        sio_poll_handle_t h = {g->w, p->token};
        if (p->owner == g->w) {
            eio_handle_poll_abort(g->w, p->sid, h);
        } else {
            sio_msg_t *m = sio_msg_new(SIO_MSG_POLL_ABORT);
            memcpy(m->sid, p->sid, sizeof(m->sid));
            m->from = h;
            sio_worker_send(p->owner, m);
        }
    }
    free(p);
}

static void complete_local(sio_worker_t *w, uint64_t token, int status, const char *ctype, buf_t *body)
{
    sio_pending_req_t *p = w->pending[token % SIO_PENDING_BUCKETS];
    while (p != NULL && p->token != token)
        p = p->next;
    if (p == NULL) {
        buf_free(body); /* the request is gone; its client will retry or close */
        return;
    }
    unlink_pending(w, p);
    ((req_guard_t *)p->guard)->p = NULL;
    h2o_req_t *req = p->req;
    free(p);
    send_text(req, status, ctype, body->base != NULL ? body->base : "", body->len);
    buf_free(body);
}

void sio_poll_reply(sio_worker_t *from, sio_poll_handle_t h, int status, const char *ctype, buf_t *body)
{
    if (h.worker == from) {
        complete_local(from, h.token, status, ctype, body);
        return;
    }
    sio_msg_t *m = sio_msg_new(SIO_MSG_REPLY);
    m->from = h;
    m->status = status;
    m->content_type = ctype;
    m->body = *body;
    *body = (buf_t)BUF_INIT;
    sio_worker_send(h.worker, m);
}

sio_pending_req_t *sio_hold_request(sio_worker_t *w, h2o_req_t *req, const char *sid, sio_worker_t *owner, int is_get)
{
    sio_pending_req_t *p = buf_xcalloc(1, sizeof(*p));
    p->req = req;
    p->token = ++w->next_token;
    p->owner = owner;
    p->is_get = is_get;
    if (sid != NULL)
        memcpy(p->sid, sid, SIO_SID_LEN);
    req_guard_t *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_guard_dispose);
    g->p = p;
    g->w = w;
    p->guard = g;
    sio_pending_req_t **head = &w->pending[p->token % SIO_PENDING_BUCKETS];
    p->next = *head;
    p->pprev = head;
    if (*head != NULL)
        (*head)->pprev = &p->next;
    *head = p;
    return p;
}

static void hold_poll(sio_worker_t *w, h2o_req_t *req, const char *sid, sio_worker_t *owner, int is_get)
{
    sio_pending_req_t *p = sio_hold_request(w, req, sid, owner, is_get);
    sio_poll_handle_t h = {w, p->token};
    buf_t body = BUF_INIT;
    if (!is_get && req->entity.base != NULL)
        buf_append(&body, req->entity.base, req->entity.len);
    if (owner == w) {
        if (is_get)
            eio_handle_poll_get(w, p->sid, h);
        else
            eio_handle_poll_post(w, p->sid, h, &body);
        return;
    }
    metrics_inc(w->srv->m.handoff_poll);
    sio_msg_t *m = sio_msg_new(is_get ? SIO_MSG_POLL_GET : SIO_MSG_POLL_POST);
    memcpy(m->sid, sid, SIO_SID_LEN);
    m->from = h;
    m->body = body;
    sio_worker_send(owner, m);
}

/* ---- WebSocket handshake ---- */

typedef struct upgrade_ctx {
    sio_worker_t *w;
    sio_worker_t *owner;
    char sid[SIO_SID_LEN + 1];
    int has_sid;
    char addr[64];
} upgrade_ctx_t;

static void on_upgrade_complete(void *_u, h2o_socket_t *sock, size_t reqsize)
{
    upgrade_ctx_t *u = _u;
    if (sock == NULL)
        goto Exit;
    h2o_buffer_consume(&sock->input, reqsize);
    if (u->owner == u->w) {
        eio_accept_ws(u->w, sock, u->has_sid ? u->sid : NULL, u->addr);
        goto Exit;
    }
    /* the session lives on another worker: move the socket to its loop */
    sio_msg_t *m = sio_msg_new(SIO_MSG_WS_ADOPT);
    /*
     * Bytes that came behind the request travel in the message, and the input
     * buffer is emptied (freed) here: libh2o buffers go back to the free list
     * of the thread whose allocator made them, which only that thread may touch.
     */
    buf_append(&m->body, sock->input->bytes, sock->input->size);
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (h2o_socket_export(sock, &m->sock) != 0) {
        free(m);
        h2o_socket_close(sock);
        goto Exit;
    }
    metrics_inc(u->w->srv->m.handoff_ws);
    memcpy(m->sid, u->sid, sizeof(m->sid));
    snprintf(m->addr, sizeof(m->addr), "%s", u->addr);
    sio_worker_send(u->owner, m);
Exit:
    free(u);
}

static void upgrade_to_ws(sio_worker_t *w, h2o_req_t *req, h2o_iovec_t key, const char *sid, sio_worker_t *owner)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t src[24 + 36], digest[SHA_DIGEST_LENGTH];
    memcpy(src, key.base, 24);
    memcpy(src + 24, guid, 36);
    SHA1(src, sizeof(src), digest);
    buf_t accept = BUF_INIT;
    buf_append_base64(&accept, digest, sizeof(digest));

    upgrade_ctx_t *u = buf_xcalloc(1, sizeof(*u));
    u->w = w;
    u->owner = owner;
    if (sid != NULL) {
        memcpy(u->sid, sid, SIO_SID_LEN);
        u->has_sid = 1;
    }
    client_addr(w, req, u->addr, sizeof(u->addr));
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL,
                          h2o_strdup(&req->pool, accept.base, accept.len).base, accept.len);
    buf_free(&accept);
    h2o_http1_upgrade(req, NULL, 0, on_upgrade_complete, u);
}

/* ---- request routing ---- */

static int handle_engine(sio_worker_t *w, h2o_req_t *req)
{
    sio_server_t *srv = w->srv;
    h2o_iovec_t origin = find_header(req, H2O_STRLIT("origin"));
    if (!origin_allowed(srv, origin)) {
        send_eio_error(w, req, 403, 4, "Forbidden");
        return 0;
    }
    if (origin.base != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, origin.base,
                       origin.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                              H2O_STRLIT("true"));
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                              H2O_STRLIT("GET, HEAD, PUT, PATCH, POST, DELETE"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                              H2O_STRLIT("content-type"));
        req->res.status = 204;
        req->res.reason = "No Content";
        h2o_send_inline(req, "", 0);
        return 0;
    }
    h2o_iovec_t transport = query_param(req, "transport");
    int is_ws = h2o_memis(transport.base, transport.len, H2O_STRLIT("websocket"));
    if (!is_ws && !h2o_memis(transport.base, transport.len, H2O_STRLIT("polling"))) {
        send_eio_error(w, req, 400, 0, "Transport unknown");
        return 0;
    }
    h2o_iovec_t eio = query_param(req, "EIO");
    if (!h2o_memis(eio.base, eio.len, H2O_STRLIT("4"))) {
        send_eio_error(w, req, 400, 5, "Unsupported protocol version");
        return 0;
    }
    h2o_iovec_t sidv = query_param(req, "sid");
    char sid[SIO_SID_LEN + 1] = "";
    sio_worker_t *owner = w;
    if (sidv.base != NULL) {
        if (sidv.len != SIO_SID_LEN) {
            send_eio_error(w, req, 400, 1, "Session ID unknown");
            return 0;
        }
        memcpy(sid, sidv.base, SIO_SID_LEN);
        owner = sio_worker_of_sid(srv, sid);
        if (owner == NULL) {
            send_eio_error(w, req, 400, 1, "Session ID unknown");
            return 0;
        }
    }
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    if (is_ws) {
        h2o_iovec_t key = find_header(req, H2O_STRLIT("sec-websocket-key"));
        if (!is_get || req->upgrade.base == NULL ||
            !h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket")) || key.len != 24 ||
            req->version >= 0x200) {
            send_eio_error(w, req, 400, 3, "Bad request");
            return 0;
        }
        if (sid[0] != '\0' && owner == w) {
            eio_session_t *e = eio_session_find(w, sid);
            if (e == NULL) {
                send_eio_error(w, req, 400, 1, "Session ID unknown");
                return 0;
            }
            if (e->transport != EIO_POLLING || e->probe_ws != NULL) {
                send_eio_error(w, req, 400, 3, "Bad request");
                return 0;
            }
        }
        upgrade_to_ws(w, req, key, sid[0] ? sid : NULL, owner);
        return 0;
    }
    if (sid[0] == '\0') {
        if (!is_get) {
            send_eio_error(w, req, 400, 2, "Bad handshake method");
            return 0;
        }
        char addr[64];
        client_addr(w, req, addr, sizeof(addr));
        eio_handshake_polling(w, req, addr);
        return 0;
    }
    int is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (!is_get && !is_post) {
        send_eio_error(w, req, 400, 3, "Bad request");
        return 0;
    }
    hold_poll(w, req, sid, owner, is_get);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, ctx, req->conn->ctx);
    sio_server_t *srv = w->srv;
    size_t plen = req->query_at == SIZE_MAX ? req->path.len : req->query_at;
    size_t elen = strlen(srv->path);
    if (plen >= elen - 1 && memcmp(req->path.base, srv->path, elen - 1) == 0 &&
        (plen == elen - 1 || req->path.base[elen - 1] == '/'))
        return handle_engine(w, req);
    for (sio_route_t *r = srv->routes; r != NULL; r = r->next) {
        if (strlen(r->path) == plen && memcmp(r->path, req->path.base, plen) == 0) {
            char method[16], path[256];
            snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
            snprintf(path, sizeof(path), "%.*s", (int)plen, req->path.base);
            sio_http_response_t res = {200, "text/plain; charset=utf-8", BUF_INIT};
            r->cb(r->ud, method, path, &res);
            send_text(req, res.status, res.content_type, res.body.base != NULL ? res.body.base : "", res.body.len);
            buf_free(&res.body);
            return 0;
        }
    }
    if (sio_api_dispatch(w, req, plen) || sio_static_dispatch(w, req, plen))
        return 0;
    send_text(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
    return 0;
}

/* ---- cross-worker messages ---- */

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        sio_msg_t *m = H2O_STRUCT_FROM_MEMBER(sio_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        switch (m->kind) {
        case SIO_MSG_POLL_GET:
            eio_handle_poll_get(w, m->sid, m->from);
            break;
        case SIO_MSG_POLL_POST:
            eio_handle_poll_post(w, m->sid, m->from, &m->body);
            break;
        case SIO_MSG_POLL_ABORT:
            eio_handle_poll_abort(w, m->sid, m->from);
            break;
        case SIO_MSG_REPLY:
            complete_local(w, m->from.token, m->status, m->content_type, &m->body);
            break;
        case SIO_MSG_WS_ADOPT: {
            h2o_socket_t *sock = h2o_socket_import(w->loop, &m->sock);
            /* the input came from the other thread's allocator (empty, nothing to free): take this one's */
            h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
            if (m->body.len > 0) {
                h2o_iovec_t room = h2o_buffer_reserve(&sock->input, m->body.len);
                memcpy(room.base, m->body.base, m->body.len);
                sock->input->size += m->body.len;
            }
            eio_accept_ws(w, sock, m->sid, m->addr);
            break;
        }
        case SIO_MSG_CALL:
            m->call(w, m->call_arg);
            break;
        case SIO_MSG_STOP:
            if (w->listener != NULL) {
                h2o_socket_read_stop(w->listener);
                h2o_socket_close(w->listener);
                w->listener = NULL;
            }
            eio_drain_worker(w);
            /* give the close frames a moment to leave before the loop ends */
            h2o_timeout_link(w->loop, &w->drain_timeout, &w->drain_entry);
            break;
        }
        buf_free(&m->body);
        free(m);
    }
}

static void on_drained(h2o_timeout_entry_t *entry)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, drain_entry, entry);
    if (w->srv->worker_stop != NULL && !w->app_stopped) {
        /* the application closes its own streams; give the loop a turn to finish them */
        w->app_stopped = 1;
        w->srv->worker_stop(w, w->srv->worker_ud);
        h2o_timeout_link(w->loop, &w->upgrade_check, &w->drain_entry);
        return;
    }
    w->stopped = 1;
}

/* ---- accepting ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    sio_worker_t *w = listener->data;
    if (err != NULL)
        return;
    /* take a burst of connections per wake-up, but not forever */
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void *worker_main(void *arg)
{
    sio_worker_t *w = arg;
    sio_server_t *srv = w->srv;
    /*
     * The queue's pipe socket takes its buffers from libh2o's per-thread
     * recycling allocator of the thread that creates it: made by the starting
     * thread, every worker's queue shared that thread's free list without a
     * lock, which corrupted the heap once workers posted to each other often.
     */
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_messages);
    pthread_barrier_wait(&srv->queues_ready); /* nobody posts to a worker before its queue exists */
    sio_flush_bind(w);
    h2o_context_init(&w->ctx, w->loop, &srv->h2o_config);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = srv->h2o_config.hosts;
    h2o_timeout_init(w->loop, &w->ping_interval, (uint64_t)srv->opt.ping_interval_ms);
    h2o_timeout_init(w->loop, &w->ping_timeout, (uint64_t)srv->opt.ping_timeout_ms);
    h2o_timeout_init(w->loop, &w->connect_timeout, (uint64_t)srv->opt.connect_timeout_ms);
    h2o_timeout_init(w->loop, &w->drain_timeout, 300);
    h2o_timeout_init(w->loop, &w->upgrade_check, 100);
    w->drain_entry.cb = on_drained;
    w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    if (srv->worker_start != NULL)
        srv->worker_start(w, srv->worker_ud);
    while (!w->stopped)
        h2o_evloop_run(w->loop, INT32_MAX);
    return NULL;
}

/* ---- server ---- */

static int bind_listener(sio_server_t *srv, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(srv->opt.host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen address %s: %s", srv->opt.host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", srv->opt.host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

sio_server_t *sio_server_new(const sio_options_t *opt, char *err, size_t errlen)
{
    if (opt->workers < 1 || opt->workers > SIO_MAX_WORKERS || opt->port < 0 || opt->port > 65535 ||
        opt->ping_interval_ms < 1 || opt->ping_timeout_ms < 1 || opt->connect_timeout_ms < 1 || opt->max_payload < 16 ||
        opt->path == NULL || opt->path[0] != '/' || opt->path[strlen(opt->path) - 1] != '/') {
        snprintf(err, errlen, "invalid server options (workers 1..%d, timeouts > 0, path like /socket.io/)",
                 SIO_MAX_WORKERS);
        return NULL;
    }
    sio_server_t *srv = buf_xcalloc(1, sizeof(*srv));
    srv->opt = *opt;
    srv->path = buf_xstrndup(opt->path, strlen(opt->path));
    srv->opt.path = srv->path;
    srv->opt.host = NULL;
    srv->nworkers = opt->workers;
    srv->opt.host = buf_xstrndup(opt->host ? opt->host : "0.0.0.0", strlen(opt->host ? opt->host : "0.0.0.0"));
    if (opt->allowed_origins != NULL && opt->allowed_origins[0] != '\0') {
        size_t n = 2;
        for (const char *p = opt->allowed_origins; *p; p++)
            n += *p == ',';
        srv->origins = buf_xcalloc(n, sizeof(char *));
        size_t i = 0;
        const char *p = opt->allowed_origins;
        while (*p) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            while (len > 0 && (*p == ' ' || *p == '\t'))
                p++, len--;
            while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
                len--;
            if (len > 0)
                srv->origins[i++] = buf_xstrndup(p, len);
            p += len;
            while (*p && *p != ',')
                p++;
            if (*p == ',')
                p++;
        }
    }
    srv->opt.allowed_origins = NULL;
    sio_metrics_t *m = &srv->m;
    m->open_polling =
        metrics_gauge("chatd_connections_open", "transport=\"polling\"", "Open Engine.IO connections, by transport");
    m->open_websocket =
        metrics_gauge("chatd_connections_open", "transport=\"websocket\"", "Open Engine.IO connections, by transport");
    m->handoff_poll = metrics_counter("chatd_worker_handoffs_total", "kind=\"poll\"",
                                      "Requests handed to the worker that owns their session");
    m->handoff_ws = metrics_counter("chatd_worker_handoffs_total", "kind=\"websocket\"",
                                    "Requests handed to the worker that owns their session");
    m->packets_in = metrics_counter("chatd_packets_in_total", NULL, "Engine.IO packets received");
    m->packets_out = metrics_counter("chatd_packets_out_total", NULL, "Engine.IO packets sent");
    m->zombies = metrics_counter("chatd_zombie_reaps_total", NULL, "Connections closed for not answering pings");
    m->handshakes = metrics_counter("chatd_handshakes_total", NULL, "Engine.IO sessions opened");
    m->bad_requests = metrics_counter("chatd_http_bad_requests_total", NULL, "Engine.IO requests refused with 400");
    for (int code = 1000; code < 1000 + SIO_CLOSE_CODES; code++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "code=\"%d\"", code);
        m->closed[code - 1000] =
            metrics_counter("chatd_connections_closed_total", labels, "Engine.IO connections closed, by close code");
    }
    m->forbidden = metrics_counter("chatd_http_forbidden_total", NULL, "Requests refused for their Origin");

    h2o_config_init(&srv->h2o_config);
    srv->h2o_config.max_request_entity_size = opt->max_payload;
    /* long-polls are held for up to a ping interval; h2o must not cut them */
    srv->h2o_config.http1.req_timeout = (uint64_t)opt->ping_interval_ms + (uint64_t)opt->ping_timeout_ms + 10000;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    return srv;
}

sio_nsp_t *sio_server_of(sio_server_t *srv, const char *name)
{
    for (sio_nsp_t *n = srv->nsps; n != NULL; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    sio_nsp_t *n = buf_xcalloc(1, sizeof(*n));
    n->name = buf_xstrndup(name, strlen(name));
    n->next = srv->nsps;
    srv->nsps = n;
    return n;
}

void sio_nsp_on_connect(sio_nsp_t *nsp, sio_connect_cb cb, void *ud)
{
    nsp->on_connect = cb;
    nsp->on_connect_ud = ud;
}

void sio_nsp_on_disconnect(sio_nsp_t *nsp, sio_disconnect_cb cb, void *ud)
{
    nsp->on_disconnect = cb;
    nsp->on_disconnect_ud = ud;
}

void sio_nsp_on(sio_nsp_t *nsp, const char *event, sio_event_cb cb, void *ud)
{
    sio_handler_t *h = buf_xcalloc(1, sizeof(*h));
    h->event = buf_xstrndup(event, strlen(event));
    h->cb = cb;
    h->ud = ud;
    h->next = nsp->handlers;
    nsp->handlers = h;
}

void sio_server_route(sio_server_t *srv, const char *path, sio_route_cb cb, void *ud)
{
    sio_route_t *r = buf_xcalloc(1, sizeof(*r));
    r->path = buf_xstrndup(path, strlen(path));
    r->cb = cb;
    r->ud = ud;
    r->next = srv->routes;
    srv->routes = r;
}

int sio_server_start(sio_server_t *srv, char *err, size_t errlen)
{
    srv->workers = buf_xcalloc((size_t)srv->nworkers, sizeof(sio_worker_t));
    int port = srv->opt.port;
    for (int i = 0; i < srv->nworkers; i++) {
        sio_worker_t *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        w->listen_fd = bind_listener(srv, port, err, errlen);
        if (w->listen_fd < 0) {
            for (int j = 0; j < i; j++)
                close(srv->workers[j].listen_fd);
            return SIO_ERR_LISTEN;
        }
        if (port == 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            getsockname(w->listen_fd, (struct sockaddr *)&ss, &len);
            port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
        }
        w->loop = h2o_evloop_create();
    }
    srv->port = port;
    pthread_barrier_init(&srv->queues_ready, NULL, (unsigned)srv->nworkers + 1);
    srv->queues_barrier = 1;
    for (int i = 0; i < srv->nworkers; i++)
        h2o_multithread_create_thread(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]);
    pthread_barrier_wait(&srv->queues_ready);
    return 0;
}

int sio_server_port(sio_server_t *srv)
{
    return srv->port;
}

int sio_server_stop(sio_server_t *srv, int timeout_ms)
{
    for (int i = 0; i < srv->nworkers; i++)
        sio_worker_send(&srv->workers[i], sio_msg_new(SIO_MSG_STOP));
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        if (pthread_timedjoin_np(srv->workers[i].tid, NULL, &deadline) != 0)
            rc = -1;
        else
            srv->workers[i].tid = 0;
    }
    return rc;
}

void sio_server_free(sio_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        sio_worker_t *w = &srv->workers[i];
        if (w->tid != 0)
            continue; /* still running: leave it to process exit */
        for (size_t b = 0; b < SIO_PENDING_BUCKETS; b++)
            while (w->pending[b] != NULL) {
                sio_pending_req_t *p = w->pending[b];
                w->pending[b] = p->next;
                ((req_guard_t *)p->guard)->p = NULL;
                free(p);
            }
        eio_table_free(w);
    }
    if (srv->queues_barrier) /* every worker left it long ago: they all answered since */
        pthread_barrier_destroy(&srv->queues_ready);
    /* h2o 2.2.5 cannot close idle HTTP/1 connections on demand, so the loops
     * and contexts of the workers stay allocated until the process exits;
     * they are parked here to stay reachable rather than leak. */
    static sio_worker_t *parked;
    free(parked);
    parked = srv->workers;
    while (srv->api_routes != NULL) {
        sio_api_route_t *r = srv->api_routes;
        srv->api_routes = r->next;
        free(r->prefix);
        free(r);
    }
    while (srv->routes != NULL) {
        sio_route_t *r = srv->routes;
        srv->routes = r->next;
        free(r->path);
        free(r);
    }
    while (srv->nsps != NULL) {
        sio_nsp_t *n = srv->nsps;
        srv->nsps = n->next;
        while (n->handlers != NULL) {
            sio_handler_t *h = n->handlers;
            n->handlers = h->next;
            free(h->event);
            free(h);
        }
        free(n->name);
        free(n);
    }
    for (char **o = srv->origins; o != NULL && *o != NULL; o++)
        free(*o);
    free(srv->origins);
    free((char *)srv->opt.host);
    free(srv->path);
    h2o_config_dispose(&srv->h2o_config);
    free(srv);
}
