/*
 * The HTTP side of the sio module: request routing, the long-polling
 * requests held for the worker that owns their session, and the WebSocket
 * handshake. The workers, their queues and the server's life: server.c.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../log/log.h"
#include "internal.h"
#include "../now/now.h"

/* ---- small helpers ---- */

static void peer_addr(h2o_conn_t *conn, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    if (len == 0 || getnameinfo((struct sockaddr *)&ss, len, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, outlen, "unknown");
}

/* The client's address: the peer, or what the application makes of the peer
 * and every X-Forwarded-For line when it resolves addresses itself (trusted
 * proxies). Only the last SIO_XFF_MAX_LINES lines are passed: the walk starts
 * at the right end, so the lines a client sent before the proxies' own are the
 * ones left out, and nothing is copied or cut. */
void sio_client_addr(sio_worker_t *w, h2o_req_t *req, char *out, size_t outlen)
{
    peer_addr(req->conn, out, outlen);
    if (w->srv->opt.resolve_addr == NULL)
        return;
    char peer[64];
    const char *lines[SIO_XFF_MAX_LINES];
    size_t lens[SIO_XFF_MAX_LINES], n = 0, total = 0;
    snprintf(peer, sizeof(peer), "%s", out);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) != -1;)
        total++;
    size_t skip = total > SIO_XFF_MAX_LINES ? total - SIO_XFF_MAX_LINES : 0;
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) != -1;) {
        if (skip > 0) {
            skip--;
            continue;
        }
        lines[n] = req->headers.entries[i].value.base;
        lens[n] = req->headers.entries[i].value.len;
        n++;
    }
    w->srv->opt.resolve_addr(w->srv->opt.resolve_addr_ud, peer, lines, lens, n, out, outlen);
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
            g->w->srv->eio.poll_abort(g->w, p->sid, h);
        } else {
            sio_msg_t *m = sio_msg_new(SIO_MSG_POLL_ABORT);
            memcpy(m->sid, p->sid, sizeof(m->sid));
            m->from = h;
            sio_worker_send(p->owner, m);
        }
    }
    free(p);
}

void sio_complete_local(sio_worker_t *w, uint64_t token, int status, const char *ctype, buf_t *body)
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

void sio_held_requests_free(sio_worker_t *w)
{
    for (size_t b = 0; b < SIO_PENDING_BUCKETS; b++)
        while (w->pending[b] != NULL) {
            sio_pending_req_t *p = w->pending[b];
            w->pending[b] = p->next;
            ((req_guard_t *)p->guard)->p = NULL;
            free(p);
        }
}

void sio_poll_reply(sio_worker_t *from, sio_poll_handle_t h, int status, const char *ctype, buf_t *body)
{
    if (h.worker == from) {
        sio_complete_local(from, h.token, status, ctype, body);
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
            w->srv->eio.poll_get(w, p->sid, h);
        else
            w->srv->eio.poll_post(w, p->sid, h, &body);
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
    int ip_slot;
    char addr[64];
} upgrade_ctx_t;

static void on_upgrade_complete(void *_u, h2o_socket_t *sock, size_t reqsize)
{
    upgrade_ctx_t *u = _u;
    if (sock == NULL) {
        limits_release(u->w->srv->opt.ip_limits, u->ip_slot);
        goto Exit;
    }
    h2o_buffer_consume(&sock->input, reqsize);
    if (u->owner == u->w) {
        u->w->srv->eio.accept_ws(u->w, sock, u->has_sid ? u->sid : NULL, u->addr, u->ip_slot);
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

static void upgrade_to_ws(sio_worker_t *w, h2o_req_t *req, h2o_iovec_t key, const char *sid, sio_worker_t *owner,
                          int ip_slot)
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
    u->ip_slot = ip_slot; /* only a session without sid is counted, and it stays on this worker */
    if (sid != NULL) {
        memcpy(u->sid, sid, SIO_SID_LEN);
        u->has_sid = 1;
    }
    sio_client_addr(w, req, u->addr, sizeof(u->addr));
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL,
                          h2o_strdup(&req->pool, accept.base, accept.len).base, accept.len);
    buf_free(&accept);
    h2o_http1_upgrade(req, NULL, 0, on_upgrade_complete, u);
}

/* ---- request routing ---- */

/*
 * A new session takes a handshake token of its address and one of its open
 * slots. Returns 0 with the slot (for limits_release when the session ends),
 * or -1 after answering 429.
 */
static int admit_session(sio_worker_t *w, h2o_req_t *req, int *slot)
{
    limits_t *l = w->srv->opt.ip_limits;
    *slot = LIMITS_UNCOUNTED;
    if (l == NULL)
        return 0;
    char addr[64];
    sio_client_addr(w, req, addr, sizeof(addr));
    uint64_t now = now_mono_ms();
    limits_limit_t refused;
    if (!limits_take(l, addr, LIMITS_HANDSHAKE, now)) {
        refused = LIMITS_HANDSHAKE_IP;
    } else if ((*slot = limits_acquire(l, addr, now)) == LIMITS_REFUSED) {
        *slot = LIMITS_UNCOUNTED;
        refused = LIMITS_CONN_IP;
    } else {
        return 0;
    }
    limits_count_refusal(refused);
    static const char body[] = "{\"code\":3,\"message\":\"rate_limited\"}";
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, H2O_STRLIT("10"));
    send_text(req, 429, "application/json", body, sizeof(body) - 1);
    return -1;
}

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
            if (!w->srv->eio.session_exists(w, sid)) {
                send_eio_error(w, req, 400, 1, "Session ID unknown");
                return 0;
            }
            /* an upgraded or upgrading session: like the reference server,
             * the second WebSocket opens and is closed (eio_accept_ws), which
             * strict clients see as a close, not as a failed handshake */
        }
        int slot = LIMITS_UNCOUNTED;
        if (sid[0] == '\0' && admit_session(w, req, &slot) != 0)
            return 0;
        upgrade_to_ws(w, req, key, sid[0] ? sid : NULL, owner, slot);
        return 0;
    }
    if (sid[0] == '\0') {
        if (!is_get) {
            send_eio_error(w, req, 400, 2, "Bad handshake method");
            return 0;
        }
        int slot;
        if (admit_session(w, req, &slot) != 0)
            return 0;
        char addr[64];
        sio_client_addr(w, req, addr, sizeof(addr));
        w->srv->eio.handshake_polling(w, req, addr, slot);
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

/*
 * A body framed two ways (Content-Length values that differ, or Content-Length
 * with Transfer-Encoding) could end where a proxy in front thinks it does
 * not: what follows would be served as a request no proxy saw (RFC 9112
 * 6.3). libh2o 2.2 keeps the first Content-Length and drops the others from
 * req->headers, so the head is read again where it still lies, at the start
 * of the socket's input until the response is done.
 */
static int framing_ambiguous(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->input == NULL)
        return 0;
    const char *p = sock->input->bytes, *end = p + sock->input->size;
    const char *cl = NULL;
    size_t cl_len = 0;
    int te = 0;
    const char *nl = memchr(p, '\n', (size_t)(end - p)); /* the request line */
    while (nl != NULL) {
        const char *line = nl + 1;
        nl = memchr(line, '\n', (size_t)(end - line));
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the end of the head */
        if (len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) {
            te = 1;
        } else if (len > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            const char *v = line + 15, *ve = line + len;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (cl == NULL) {
                cl = v;
                cl_len = (size_t)(ve - v);
            } else if ((size_t)(ve - v) != cl_len || memcmp(v, cl, cl_len) != 0) {
                return 1;
            }
        }
    }
    return te && cl != NULL;
}

int sio_http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, ctx, req->conn->ctx);
    sio_server_t *srv = w->srv;
    if (framing_ambiguous(req)) {
        req->http1_is_persistent = 0;
        metrics_inc(srv->m.bad_requests);
        send_text(req, 400, "text/plain; charset=utf-8", "ambiguous message framing\n", 26);
        return 0;
    }
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
    const sio_api_route_t *route = sio_api_find(w->srv, req, plen);
    if (route != NULL) {
        char addr[sizeof(((sio_http_request_t *)NULL)->addr)];
        sio_client_addr(w, req, addr, sizeof(addr));
        sio_api_start(route, w, req, plen, sio_hold_request(w, req, NULL, w, 0)->token, addr);
        return 0;
    }
    if (sio_static_dispatch(w, req, plen))
        return 0;
    send_text(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
    return 0;
}
