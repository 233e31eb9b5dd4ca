/*
 * Engine.IO v4 sessions: the handshake, HTTP long-polling, WebSocket, the
 * upgrade from one to the other, and heartbeats. A session lives on one
 * worker; requests that land elsewhere reach it as messages (see http.c).
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "../log/log.h"
#include "internal.h"

/* Decodes a polling payload in place into a new array (the caller frees
 * it), sized by counting separators. Returns NULL when it is invalid. */
static eio_packet_t *decode_payload(buf_t *b, size_t *count)
{
    size_t max = 1;
    for (size_t i = 0; i < b->len; i++)
        max += b->base[i] == '\x1e';
    eio_packet_t *pkts = buf_xmalloc(max * sizeof(*pkts));
    if (b->len == 0 || eio_payload_decode(b->base, b->len, pkts, max, count) != 0) {
        free(pkts);
        return NULL;
    }
    return pkts;
}

/* ---- the per-worker session table ---- */

static size_t sid_hash(const char *sid)
{
    size_t h = 1469598103934665603ull;
    for (int i = 0; i < SIO_SID_LEN; i++)
        h = (h ^ (unsigned char)sid[i]) * 1099511628211ull;
    return h;
}

static void table_insert(sio_session_table_t *t, eio_session_t *e)
{
    if (t->count + 1 > t->cap * 3 / 4) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        eio_session_t **slots = buf_xcalloc(ncap, sizeof(*slots));
        for (size_t i = 0; i < t->cap; i++) {
            eio_session_t *s = t->slots[i], *next;
            for (; s != NULL; s = next) {
                next = s->hnext;
                size_t b = sid_hash(s->sid) & (ncap - 1);
                s->hnext = slots[b];
                slots[b] = s;
            }
        }
        free(t->slots);
        t->slots = slots;
        t->cap = ncap;
    }
    size_t b = sid_hash(e->sid) & (t->cap - 1);
    e->hnext = t->slots[b];
    t->slots[b] = e;
    t->count++;
}

static void table_remove(sio_session_table_t *t, eio_session_t *e)
{
    size_t b = sid_hash(e->sid) & (t->cap - 1);
    for (eio_session_t **pp = &t->slots[b]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            t->count--;
            return;
        }
    }
}

eio_session_t *eio_session_find(sio_worker_t *w, const char *sid)
{
    sio_session_table_t *t = &w->sessions;
    if (t->cap == 0 || strlen(sid) != SIO_SID_LEN)
        return NULL;
    for (eio_session_t *e = t->slots[sid_hash(sid) & (t->cap - 1)]; e != NULL; e = e->hnext)
        if (memcmp(e->sid, sid, SIO_SID_LEN) == 0)
            return e;
    return NULL;
}

int eio_session_exists(sio_worker_t *w, const char *sid)
{
    return eio_session_find(w, sid) != NULL;
}

void eio_table_free(sio_worker_t *w)
{
    free(w->sessions.slots);
    w->sessions.slots = NULL;
    w->sessions.cap = w->sessions.count = 0;
}

/* ---- lifetime ---- */

static void session_release(eio_session_t *e)
{
    CHECK(e->refs > 0);
    if (--e->refs != 0)
        return;
    buf_free(&e->out);
    free(e);
}

static void on_ping_timer(h2o_timeout_entry_t *entry);

static void gen_sid(sio_worker_t *w, char *sid)
{
    uint8_t rnd[SIO_SID_LEN - 1];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        abort(); /* the kernel's CSPRNG cannot fail once seeded */
    sid[0] = sio_b64url[w->index];
    for (int i = 1; i < SIO_SID_LEN; i++)
        sid[i] = sio_b64url[rnd[i - 1] & 63];
    sid[SIO_SID_LEN] = '\0';
}

eio_session_t *eio_session_new(sio_worker_t *w, eio_transport_t transport, const char *addr, int ip_slot)
{
    eio_session_t *e = buf_xcalloc(1, sizeof(*e));
    e->worker = w;
    e->ip_slot = ip_slot;
    e->transport = transport;
    e->refs = 1;
    do
        gen_sid(w, e->sid);
    while (eio_session_find(w, e->sid) != NULL);
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    table_insert(&w->sessions, e);
    metrics_inc(transport == EIO_WEBSOCKET ? w->srv->m.open_websocket : w->srv->m.open_polling);
    metrics_inc(w->srv->m.handshakes);
    e->ping_entry.cb = on_ping_timer;
    h2o_timeout_link(w->loop, &w->ping_interval, &e->ping_entry);
    return e;
}

/* The payload of the open packet, without the leading '0'. */
static void append_open(eio_session_t *e, buf_t *out, int can_upgrade)
{
    const sio_options_t *o = &e->worker->srv->opt;
    char tmp[256];
    int n = snprintf(
        tmp, sizeof(tmp), "{\"sid\":\"%s\",\"upgrades\":%s,\"pingInterval\":%d,\"pingTimeout\":%d,\"maxPayload\":%zu}",
        e->sid, can_upgrade ? "[\"websocket\"]" : "[]", o->ping_interval_ms, o->ping_timeout_ms, o->max_payload);
    buf_append(out, tmp, (size_t)n);
}

static void closed_metric(sio_worker_t *w, int code)
{
    /* a label from a fixed set: a client chooses the codes it sends */
    if (code >= 1000 && code < 1000 + SIO_CLOSE_CODES)
        metrics_inc(w->srv->m.closed[code - 1000]);
    else
        metrics_inc(w->srv->m.closed_other);
}

static void reply_get(eio_session_t *e, const char *body, size_t len)
{
    buf_t b = BUF_INIT;
    if (len)
        buf_append(&b, body, len);
    e->has_get = 0;
    sio_poll_reply(e->worker, e->get, 200, "text/plain; charset=UTF-8", &b);
}

static void flush_get(eio_session_t *e)
{
    if (!e->has_get || e->out.len == 0)
        return;
    buf_t b = e->out;
    e->out = (buf_t)BUF_INIT;
    e->has_get = 0;
    e->pong_queued = 0;
    sio_poll_reply(e->worker, e->get, 200, "text/plain; charset=UTF-8", &b);
}

/*
 * Ends the session. `code` is the WebSocket close code it is counted under
 * (1000 when the client asked, 1001 on shutdown, 1002 on a protocol error,
 * 1006 when the transport vanished, 1008 on policy, 1009 when too big).
 */
void eio_session_close(eio_session_t *e, int code, const char *reason)
{
    if (e->closed)
        return;
    e->closed = 1;
    sio_worker_t *w = e->worker;
    h2o_timeout_unlink(&e->ping_entry);
    if (h2o_timeout_is_linked(&e->connect_entry))
        h2o_timeout_unlink(&e->connect_entry);
    if (h2o_timeout_is_linked(&e->noop_entry))
        h2o_timeout_unlink(&e->noop_entry);
    table_remove(&w->sessions, e);
    limits_release(w->srv->opt.ip_limits, e->ip_slot);
    e->ip_slot = LIMITS_UNCOUNTED;
    metrics_dec(e->transport == EIO_WEBSOCKET ? w->srv->m.open_websocket : w->srv->m.open_polling);
    closed_metric(w, code);
    if (e->conn != NULL && w->srv->conn.closed != NULL)
        w->srv->conn.closed(e, reason);
    if (e->probe_ws != NULL) {
        ws_conn_set_data(e->probe_ws, NULL);
        ws_conn_close(e->probe_ws, code == 1000 ? 1000 : code);
        e->probe_ws = NULL;
    }
    if (e->ws != NULL) {
        ws_conn_set_data(e->ws, NULL);
        ws_conn_close(e->ws, code);
        e->ws = NULL;
    }
    if (e->client_closed && e->transport == EIO_POLLING && !e->has_get) {
        unsigned i = w->closed_next++ % 16;
        memcpy(w->closed_recently[i].sid, e->sid, sizeof(e->sid));
        w->closed_recently[i].until = h2o_now(w->loop) + 1000;
    }
    if (e->has_get) {
        /* a client's close packet ends the poll with a noop, as the
         * reference server does; any other end, a server-side close with
         * 1000 included (a ban), tells the client to close: a noop would
         * leave a client that is pausing polling for an upgrade waiting forever */
        if (e->client_closed)
            reply_get(e, "6", 1);
        else
            reply_get(e, "1", 1);
    }
    log_debug("eio session closed", json_pack("{s:s,s:i,s:s}", "sid", e->sid, "code", code, "reason", reason));
    session_release(e); /* the table's ref; callers inside callbacks hold their own */
}

void eio_drain_worker(sio_worker_t *w)
{
    sio_session_table_t *t = &w->sessions;
    for (size_t i = 0; i < t->cap; i++)
        while (t->slots != NULL && t->slots[i] != NULL)
            eio_session_close(t->slots[i], 1001, "server shutdown");
}

/* ---- sending ---- */

/*
 * The client reads slower than we write: stop sending and reading and close
 * it from a zero-delay timeout, not here, because a sender deep in a call
 * chain must not see its session freed under it.
 */
static void session_overflow(eio_session_t *e)
{
    sio_worker_t *w = e->worker;
    e->overflowed = 1;
    h2o_timeout_unlink(&e->ping_entry);
    h2o_timeout_link(w->loop, &w->flush_timeout, &e->ping_entry);
}

static size_t session_queued(const eio_session_t *e)
{
    return e->transport == EIO_WEBSOCKET ? (e->ws != NULL ? ws_conn_queued(e->ws) : 0) : e->out.len;
}

void eio_session_send(eio_session_t *e, eio_type_t type, int binary, const void *data, size_t len)
{
    if (e->closed || e->overflowed)
        return;
    size_t queued = session_queued(e), max = e->worker->srv->opt.max_queued;
    if (queued > max || len > max - queued) {
        session_overflow(e);
        return;
    }
    metrics_inc(e->worker->srv->m.packets_out);
    if (e->transport == EIO_WEBSOCKET) {
        if (e->ws == NULL)
            return;
        if (binary) {
            ws_conn_send(e->ws, 1, data, len, NULL, 0);
        } else {
            char t = (char)('0' + type);
            ws_conn_send(e->ws, 0, &t, 1, data, len);
        }
        return;
    }
    eio_payload_append(&e->out, type, binary, data, len);
    if (type == EIO_PONG)
        e->pong_queued = 1;
    flush_get(e);
}

void sio_engine_send(eio_session_t *e, int binary, const void *data, size_t len)
{
    eio_session_send(e, EIO_MESSAGE, binary, data, len);
}

/* ---- heartbeat ---- */

static void on_ping_timer(h2o_timeout_entry_t *entry)
{
    eio_session_t *e = H2O_STRUCT_FROM_MEMBER(eio_session_t, ping_entry, entry);
    sio_worker_t *w = e->worker;
    if (e->overflowed) {
        metrics_inc(w->srv->m.slow_readers);
        eio_session_close(e, 1008, "output queue full");
        return;
    }
    if (e->awaiting_pong) {
        metrics_inc(w->srv->m.zombies);
        eio_session_close(e, 1006, "ping timeout");
        return;
    }
    e->awaiting_pong = 1;
    h2o_timeout_link(w->loop, &w->ping_timeout, &e->ping_entry);
    eio_session_send(e, EIO_PING, 0, NULL, 0);
}

static void on_pong(eio_session_t *e)
{
    if (!e->awaiting_pong)
        return;
    e->awaiting_pong = 0;
    h2o_timeout_unlink(&e->ping_entry);
    h2o_timeout_link(e->worker->loop, &e->worker->ping_interval, &e->ping_entry);
}

/* ---- receiving ---- */

static void handle_packet(eio_session_t *e, eio_type_t type, int binary, const uint8_t *data, size_t len)
{
    sio_server_t *srv = e->worker->srv;
    if (e->overflowed)
        return; /* closing: read nothing more from a client that does not read */
    metrics_inc(srv->m.packets_in);
    switch (type) {
    case EIO_PONG:
        on_pong(e);
        break;
    case EIO_PING:
        /* one pong answers every ping it waits behind: replies never pile up */
        if (!e->pong_queued)
            eio_session_send(e, EIO_PONG, 0, data, len);
        break;
    case EIO_MESSAGE:
        srv->conn.message(e, binary, data, len);
        break;
    case EIO_CLOSE:
        e->client_closed = 1;
        eio_session_close(e, 1000, "client close");
        break;
    case EIO_NOOP:
        break;
    default:
        eio_session_close(e, 1002, "unexpected packet");
        break;
    }
}

static void reply_error(sio_worker_t *w, sio_poll_handle_t from, int status, int code, const char *message)
{
    buf_t b = BUF_INIT;
    char tmp[128];
    int n = snprintf(tmp, sizeof(tmp), "{\"code\":%d,\"message\":\"%s\"}", code, message);
    buf_append(&b, tmp, (size_t)n);
    sio_poll_reply(w, from, status, "application/json", &b);
}

void eio_handshake_polling(sio_worker_t *w, h2o_req_t *req, const char *addr, int ip_slot)
{
    eio_session_t *e = eio_session_new(w, EIO_POLLING, addr, ip_slot);
    buf_t b = BUF_INIT;
    buf_append_char(&b, '0');
    append_open(e, &b, 1);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; charset=UTF-8"));
    h2o_send_inline(req, b.base, b.len);
    buf_free(&b);
    if (w->srv->conn.open != NULL)
        w->srv->conn.open(e);
}

static void on_upgrade_check(h2o_timeout_entry_t *entry)
{
    eio_session_t *e = H2O_STRUCT_FROM_MEMBER(eio_session_t, noop_entry, entry);
    if (e->has_get && e->transport == EIO_POLLING)
        reply_get(e, "6", 1);
}

void eio_handle_poll_get(sio_worker_t *w, const char *sid, sio_poll_handle_t from)
{
    eio_session_t *e = eio_session_find(w, sid);
    if (e == NULL) {
        for (unsigned i = 0; i < 16; i++) {
            if (memcmp(w->closed_recently[i].sid, sid, SIO_SID_LEN) == 0 &&
                w->closed_recently[i].until > h2o_now(w->loop)) {
                w->closed_recently[i].sid[0] = '\0';
                buf_t noop = BUF_INIT;
                buf_append_char(&noop, '6');
                sio_poll_reply(w, from, 200, "text/plain; charset=UTF-8", &noop);
                return;
            }
        }
        reply_error(w, from, 400, 1, "Session ID unknown");
        return;
    }
    if (e->transport != EIO_POLLING) {
        reply_error(w, from, 400, 3, "Bad request");
        return;
    }
    if (e->has_get) {
        /* two polls at once: the reference server ends the session */
        reply_error(w, from, 400, 3, "Bad request");
        eio_session_close(e, 1002, "poll overlap");
        return;
    }
    e->has_get = 1;
    e->get = from;
    if (e->out.len != 0) {
        flush_get(e);
    } else if (e->upgraded_probe) {
        /* Upgrading: as the reference server, end this poll with a noop a
         * little later, unless the upgrade completes first. */
        e->noop_entry.cb = on_upgrade_check;
        h2o_timeout_link(w->loop, &w->upgrade_check, &e->noop_entry);
    }
}

void eio_handle_poll_post(sio_worker_t *w, const char *sid, sio_poll_handle_t from, buf_t *body)
{
    eio_session_t *e = eio_session_find(w, sid);
    if (e == NULL) {
        reply_error(w, from, 400, 1, "Session ID unknown");
        goto Exit;
    }
    if (e->transport != EIO_POLLING) {
        reply_error(w, from, 400, 3, "Bad request");
        goto Exit;
    }
    size_t count = 0;
    eio_packet_t *pkts = decode_payload(body, &count);
    if (pkts == NULL) {
        reply_error(w, from, 400, 3, "Bad request");
        eio_session_close(e, 1002, "parse error");
        goto Exit;
    }
    buf_t ok = BUF_INIT;
    buf_append(&ok, "ok", 2);
    sio_poll_reply(w, from, 200, "text/html", &ok);
    e->refs++;
    for (size_t i = 0; i < count && !e->closed; i++)
        handle_packet(e, pkts[i].type, pkts[i].binary, pkts[i].data, pkts[i].len);
    session_release(e);
    free(pkts);
Exit:
    buf_free(body);
}

void eio_handle_poll_abort(sio_worker_t *w, const char *sid, sio_poll_handle_t from)
{
    eio_session_t *e = eio_session_find(w, sid);
    if (e == NULL || !e->has_get || e->get.worker != from.worker || e->get.token != from.token)
        return;
    e->has_get = 0;
    eio_session_close(e, 1006, "poll aborted");
}

/* ---- WebSocket transport ---- */

static void upgrade_complete(eio_session_t *e)
{
    sio_worker_t *w = e->worker;
    e->transport = EIO_WEBSOCKET;
    e->ws = e->probe_ws;
    e->probe_ws = NULL;
    metrics_dec(w->srv->m.open_polling);
    metrics_inc(w->srv->m.open_websocket);
    if (h2o_timeout_is_linked(&e->noop_entry))
        h2o_timeout_unlink(&e->noop_entry);
    if (e->has_get) {
        /* a poll sent after the client chose the WebSocket is refused */
        e->has_get = 0;
        reply_error(w, e->get, 400, 3, "Bad request");
    }
    if (e->out.len != 0) {
        /* what waited for a poll now leaves on the WebSocket, in order */
        buf_t pending = e->out;
        e->out = (buf_t)BUF_INIT;
        size_t count = 0;
        eio_packet_t *pkts = decode_payload(&pending, &count);
        for (size_t i = 0; pkts != NULL && i < count; i++)
            eio_session_send(e, pkts[i].type, pkts[i].binary, pkts[i].data, pkts[i].len);
        free(pkts);
        buf_free(&pending);
    }
}

static void probe_on_message(eio_session_t *e, ws_conn_t *ws, int binary, uint8_t *data, size_t len)
{
    if (!binary && len == 6 && memcmp(data, "2probe", 6) == 0) {
        char pong[] = "3probe";
        ws_conn_send(ws, 0, pong, 6, NULL, 0);
        /* before the answer to a poll the client sent just after the probe,
         * which may be handled in this same turn: the reference server's
         * order, which the client sees */
        ws_conn_flush_now(ws);
        e->upgraded_probe = 1;
        /* As the reference server: a held poll ends with a noop shortly,
         * unless the client completes the upgrade first (then it gets 400). */
        if (e->has_get && e->out.len == 0 && !h2o_timeout_is_linked(&e->noop_entry)) {
            e->noop_entry.cb = on_upgrade_check;
            h2o_timeout_link(e->worker->loop, &e->worker->upgrade_check, &e->noop_entry);
        }
        return;
    }
    if (!binary && len == 1 && data[0] == '5' && e->upgraded_probe) {
        upgrade_complete(e);
        return;
    }
    /* anything else on a probe is a broken upgrade: drop the probe only */
    ws_conn_set_data(ws, NULL);
    ws_conn_close(ws, 1002);
    e->probe_ws = NULL;
    e->upgraded_probe = 0;
}

static void ws_on_message(ws_conn_t *ws, int binary, uint8_t *data, size_t len)
{
    eio_session_t *e = ws_conn_data(ws);
    if (e == NULL || e->closed)
        return;
    e->refs++;
    if (ws == e->probe_ws) {
        probe_on_message(e, ws, binary, data, len);
    } else if (binary) {
        handle_packet(e, EIO_MESSAGE, 1, data, len);
    } else {
        eio_packet_t p;
        if (eio_packet_parse_text((const char *)data, len, &p) != 0)
            eio_session_close(e, 1002, "parse error");
        else
            handle_packet(e, p.type, 0, p.data, p.len);
    }
    session_release(e);
}

static void ws_on_close(ws_conn_t *ws, int code)
{
    eio_session_t *e = ws_conn_data(ws);
    if (e == NULL)
        return;
    ws_conn_set_data(ws, NULL);
    if (ws == e->probe_ws) {
        e->probe_ws = NULL;
        e->upgraded_probe = 0;
        return;
    }
    if (ws == e->ws) {
        e->ws = NULL;
        eio_session_close(e, code == 1005 ? 1000 : code, "transport close");
    }
}

static const ws_callbacks_t ws_callbacks = {ws_on_message, ws_on_close};

void eio_accept_ws(sio_worker_t *w, h2o_socket_t *sock, const char *sid, const char *addr, int ip_slot)
{
    size_t max = w->srv->opt.max_payload;
    if (sid == NULL) {
        eio_session_t *e = eio_session_new(w, EIO_WEBSOCKET, addr, ip_slot);
        e->ws = ws_conn_new(w, sock, max, &ws_callbacks, e);
        buf_t b = BUF_INIT;
        append_open(e, &b, 0);
        eio_session_send(e, EIO_OPEN, 0, b.base, b.len);
        buf_free(&b);
        if (w->srv->conn.open != NULL)
            w->srv->conn.open(e);
        ws_conn_start(e->ws);
        return;
    }
    eio_session_t *e = eio_session_find(w, sid);
    if (e == NULL || e->transport != EIO_POLLING || e->probe_ws != NULL) {
        /* the session is gone or already upgraded: refuse this one only */
        ws_conn_t *ws = ws_conn_new(w, sock, max, &ws_callbacks, NULL);
        ws_conn_close(ws, 1008);
        return;
    }
    e->probe_ws = ws_conn_new(w, sock, max, &ws_callbacks, e);
    ws_conn_start(e->probe_ws);
}
