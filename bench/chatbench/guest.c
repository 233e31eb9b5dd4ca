/*
 * guest: one simulated guest (see guest.h). The flow and the payloads are
 * those of protocol.md §3-5; acks we send carry our kind of request in their
 * two low bits, so an answer needs no lookup table.
 */
#include "guest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eio.h"
#include "json.h"
#include "ws.h"

enum { ACK_REQUEST = 0, ACK_ACCEPT = 1, ACK_CHAT = 2 };

/* chatd's default maxPayload is 1000000; anything larger is not from it */
#define GUEST_MAX_FRAME (1u << 20)
/* reads per wakeup before giving other guests a turn (level-triggered: the rest comes next time) */
#define GUEST_READS_PER_WAKEUP 4

static const char eio_path[] = "/socket.io/?EIO=4&transport=websocket";
/* 64 bytes of ASCII: nothing in it needs escaping, and it is a typical short chat line */
static const char chat_text[] = "chatbench: a message of a typical length for a one-to-one chat!!";

static int64_t next_ack_id(guest_t *g, int kind)
{
    return (int64_t)g->next_ack++ << 2 | kind;
}

static void mark_dirty(bench_t *b, guest_t *g)
{
    if (g->flags & GF_DIRTY)
        return;
    g->flags |= GF_DIRTY;
    g->dirty_next = b->dirty;
    b->dirty = g;
}

/* Queues one Engine.IO packet as a masked text frame. */
static void send_text(bench_t *b, guest_t *g, const char *s, size_t len)
{
    ws_frame_append(&g->out, WS_OP_TEXT, s, len, (uint32_t)bench_rand(b));
    mark_dirty(b, g);
}

/* Queues b->pkt, the packet just built. */
static void send_pkt(bench_t *b, guest_t *g)
{
    send_text(b, g, b->pkt.base, b->pkt.len);
}

static void epoll_watch(bench_t *b, guest_t *g, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = g->idx};
    epoll_ctl(b->epfd, EPOLL_CTL_MOD, g->fd, &ev);
}

void guest_fail(bench_t *b, guest_t *g, bench_err_t kind, const char *fmt, ...)
{
    if (g->state == G_DEAD || g->state == G_CLOSED)
        return;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    bench_error(b, kind, "guest %u: %s", g->idx, why);
    if (g->state < G_READY)
        b->st.settled++; /* a connection attempt that ended without a guest */
    else if (!(g->flags & GF_PAIRED))
        b->st.waiting--;
    /* its unanswered messages will never be answered: the disconnect was the error */
    b->st.answered += g->pending;
    g->pending = 0;
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    g->state = G_DEAD;
}

void guest_close(guest_t *g)
{
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    if (g->state != G_IDLE)
        g->state = G_CLOSED;
    buf_free(&g->in);
    buf_free(&g->out);
    buf_free(&g->frag);
}

void guest_start(bench_t *b, guest_t *g)
{
    const net_target_t *t = &b->targets[g->target];
    b->st.started++;
    g->started_ns = bench_now();
    g->fd = net_connect(t, g->idx / (uint32_t)b->ntargets);
    if (g->fd < 0) {
        int e = -g->fd;
        g->fd = -1;
        guest_fail(b, g, ERR_CONNECT, "connect to %s: %s", t->url, strerror(e));
        return;
    }
    g->state = G_TCP;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = g->idx};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, g->fd, &ev) != 0)
        guest_fail(b, g, ERR_CONNECT, "epoll: %s", strerror(errno));
}

/* TCP is up: send the upgrade request and wait for its answer. */
static void on_connected(bench_t *b, guest_t *g)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(g->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        guest_fail(b, g, ERR_CONNECT, "connect to %s: %s", b->targets[g->target].url, strerror(err));
        return;
    }
    uint64_t r[2] = {bench_rand(b), bench_rand(b)};
    uint8_t nonce[16];
    memcpy(nonce, r, sizeof(nonce));
    ws_handshake_request(&g->out, b->targets[g->target].hostport, eio_path, nonce, g->accept);
    g->state = G_UPGRADE;
    epoll_watch(b, g, EPOLLIN | EPOLLRDHUP);
    mark_dirty(b, g);
}

/* The guest has all three namespaces: it counts as connected. */
static void on_ready(bench_t *b, guest_t *g)
{
    g->state = G_READY;
    b->st.ready++;
    b->st.settled++;
    b->st.waiting++;
}

void guest_request_match(bench_t *b, guest_t *g)
{
    buf_reset(&b->pkt);
    eio_header(&b->pkt, SIO_EVENT, EIO_NSP_MATCH, next_ack_id(g, ACK_REQUEST));
    buf_append_str(&b->pkt, "[\"match:request\",{\"scope\":\"any\"}]");
    send_pkt(b, g);
}

void guest_send_chat(bench_t *b, guest_t *g)
{
    uint64_t sent_us = (bench_now() - b->t0) / 1000;
    buf_reset(&b->pkt);
    eio_header(&b->pkt, SIO_EVENT, EIO_NSP_CHAT, next_ack_id(g, ACK_CHAT));
    buf_append_str(&b->pkt, "[\"chat:message\",{\"sessionId\":\"");
    buf_append_str(&b->pkt, g->session);
    /* id "<n>.<send time in us>": unique, and the receiver reads the send time from it */
    buf_append_str(&b->pkt, "\",\"id\":\"");
    buf_append_u64(&b->pkt, b->next_msg++);
    buf_append_char(&b->pkt, '.');
    buf_append_u64(&b->pkt, sent_us);
    buf_append_str(&b->pkt, "\",\"text\":\"");
    buf_append_str(&b->pkt, chat_text);
    buf_append_str(&b->pkt, "\"}]");
    send_pkt(b, g);
    g->pending++;
    b->st.sent++;
}

/*
 * Reads our message id "<n>.<send time in us>" from the JSON string
 * [v, vend): sets *n and returns the microseconds since the send, or -1 when
 * the id is not one of ours.
 */
static int64_t parse_id(bench_t *b, const char *v, const char *vend, uint64_t *n)
{
    char id[80], *end;
    if (js_string(v, vend, id, sizeof(id)) < 0)
        return -1;
    *n = strtoull(id, &end, 10);
    if (*end != '.')
        return -1;
    unsigned long long sent_us = strtoull(end + 1, &end, 10);
    uint64_t now_us = (bench_now() - b->t0) / 1000;
    if (*end != '\0' || sent_us > now_us)
        return -1;
    return (int64_t)(now_us - sent_us);
}

/* Reads member `key` of the object [v, vend) as a string into out; "" when absent. */
static void member_string(const char *v, const char *vend, const char *key, char *out, size_t cap)
{
    const char *m, *mend;
    if (v == NULL || js_member(v, vend, key, &m, &mend) != 0 || js_string(m, mend, out, cap) < 0)
        out[0] = '\0';
}

static void on_session_event(bench_t *b, guest_t *g)
{
    if (g->state != G_ROOT)
        return;
    b->st.rooted++;
    b->t_last_rooted = bench_now();
    g->state = G_NSP;
    send_text(b, g, "40/match,", 9);
    send_text(b, g, "40/chat,", 8);
}

static void on_user_session(bench_t *b, guest_t *g, const char *v, const char *vend)
{
    member_string(v, vend, "sessionId", g->session, sizeof(g->session));
    if (g->session[0] == '\0') {
        guest_fail(b, g, ERR_PROTOCOL, "user-session without a sessionId");
        return;
    }
    if ((g->flags & GF_PAIRED) || g->state != G_READY)
        return;
    g->flags |= GF_PAIRED;
    b->st.waiting--;
    b->st.paired++;
    b->pairs[b->npairs++] = g->idx;
    b->t_last_pair = b->t_progress = bench_now();
}

static void on_proposal(bench_t *b, guest_t *g, const char *v, const char *vend)
{
    char pid[128];
    member_string(v, vend, "proposalId", pid, sizeof(pid));
    buf_reset(&b->pkt);
    eio_header(&b->pkt, SIO_EVENT, EIO_NSP_MATCH, next_ack_id(g, ACK_ACCEPT));
    buf_append_str(&b->pkt, "[\"match:accept\",{\"proposalId\":\"");
    buf_append_str(&b->pkt, pid); /* base64url: nothing to escape */
    buf_append_str(&b->pkt, "\"}]");
    send_pkt(b, g);
}

static void on_chat_message(bench_t *b, const char *v, const char *vend)
{
    const char *m, *mend;
    uint64_t n = 0;
    int64_t age = v != NULL && js_member(v, vend, "id", &m, &mend) == 0 ? parse_id(b, m, mend, &n) : -1;
    b->st.received++;
    if (age < 0)
        return;
    /* a second delivery of a message is the server's mistake unless a node died: count it apart */
    if (n < b->seen_bits && (b->seen[n / 8] & (1u << (n % 8)))) {
        b->st.duplicates++;
        return;
    }
    if (n < b->seen_bits)
        b->seen[n / 8] |= (uint8_t)(1u << (n % 8));
    histo_record(&b->receipt, (uint64_t)age);
    histo_record(&b->second, (uint64_t)age);
}

static void on_event(bench_t *b, guest_t *g, const eio_pkt_t *p)
{
    const char *n, *nend, *v = NULL, *vend = NULL;
    char name[40];
    if (js_index(p->data, p->end, 0, &n, &nend) != 0 || js_string(n, nend, name, sizeof(name)) < 0) {
        guest_fail(b, g, ERR_PROTOCOL, "an event without a name on %s", eio_nsp_name(p->nsp));
        return;
    }
    if (js_index(p->data, p->end, 1, &v, &vend) != 0)
        v = vend = NULL;
    if (p->ack >= 0) {
        /* the server wants an answer; for chat:message, it is the delivery receipt */
        buf_reset(&b->pkt);
        eio_header(&b->pkt, SIO_ACK, p->nsp, p->ack);
        buf_append_str(&b->pkt, "[]");
        send_pkt(b, g);
    }
    if (p->nsp == EIO_NSP_CHAT && strcmp(name, "chat:message") == 0) {
        on_chat_message(b, v, vend);
    } else if (p->nsp == EIO_NSP_ROOT && strcmp(name, "session") == 0) {
        on_session_event(b, g);
    } else if (p->nsp == EIO_NSP_ROOT && strcmp(name, "user-session") == 0) {
        on_user_session(b, g, v, vend);
    } else if (p->nsp == EIO_NSP_MATCH && strcmp(name, "match:proposal") == 0) {
        on_proposal(b, g, v, vend);
    } else if (p->nsp == EIO_NSP_MATCH && strcmp(name, "match:expired") == 0) {
        if (!(g->flags & GF_PAIRED))
            guest_request_match(b, g); /* it let a proposal expire and left the queue: ask again */
    } else if (p->nsp == EIO_NSP_ROOT && strcmp(name, "user-left") == 0 && (g->flags & GF_PAIRED)) {
        char reason[32];
        member_string(v, vend, "reason", reason, sizeof(reason));
        g->flags &= (uint8_t)~GF_PAIRED;
        bench_error(b, ERR_SESSION_ENDED, "guest %u: user-left %s", g->idx, reason);
    }
    /* match:waiting, match:withdrawn, chat:delivered, peer-status...: nothing to do */
}

static void on_ack(bench_t *b, guest_t *g, const eio_pkt_t *p)
{
    static const char *const what[] = {"match:request", "match:accept", "chat:message", "?"};
    int kind = (int)(p->ack & 3);
    const char *v, *vend, *ok, *okend;
    if (js_index(p->data, p->end, 0, &v, &vend) != 0) {
        guest_fail(b, g, ERR_PROTOCOL, "an ack without arguments for %s", what[kind]);
        return;
    }
    if (kind == ACK_CHAT) {
        b->st.answered++;
        if (g->pending > 0)
            g->pending--;
    }
    if (js_member(v, vend, "ok", &ok, &okend) != 0 || !js_is_true(ok, okend)) {
        char code[64];
        member_string(v, vend, "error", code, sizeof(code));
        bench_error(b, strcmp(code, "rate_limited") == 0 ? ERR_RATE_LIMITED : ERR_ACK, "guest %u: %s answered %s",
                    g->idx, what[kind], code);
        return;
    }
    if (kind != ACK_CHAT)
        return;
    char status[16];
    member_string(v, vend, "status", status, sizeof(status));
    b->st.ok++;
    if (strcmp(status, "delivered") == 0)
        b->st.delivered++;
    else
        b->st.queued++;
    const char *id, *idend;
    uint64_t n;
    int64_t age = js_member(v, vend, "id", &id, &idend) == 0 ? parse_id(b, id, idend, &n) : -1;
    if (age >= 0)
        histo_record(&b->acked, (uint64_t)age);
    b->t_last_ok = bench_now();
}

static void on_socketio(bench_t *b, guest_t *g, const eio_pkt_t *p)
{
    switch (p->sio) {
    case SIO_CONNECT:
        if (p->nsp == EIO_NSP_MATCH)
            g->flags |= GF_MATCH;
        else if (p->nsp == EIO_NSP_CHAT)
            g->flags |= GF_CHAT;
        /* the CONNECT to / is complete with its `session` event, which follows */
        if (g->state == G_NSP && (g->flags & (GF_MATCH | GF_CHAT)) == (GF_MATCH | GF_CHAT))
            on_ready(b, g);
        break;
    case SIO_CONNECT_ERROR:
        guest_fail(b, g, ERR_CONNECT_ERROR, "CONNECT_ERROR on %s: %.*s", eio_nsp_name(p->nsp),
                   (int)(p->end - p->data > 80 ? 80 : p->end - p->data), p->data);
        break;
    case SIO_DISCONNECT:
        guest_fail(b, g, ERR_DISCONNECT, "the server disconnected %s", eio_nsp_name(p->nsp));
        break;
    case SIO_EVENT:
        on_event(b, g, p);
        break;
    case SIO_ACK:
        on_ack(b, g, p);
        break;
    }
}

/* One Engine.IO packet (a whole text message). */
static void on_message(bench_t *b, guest_t *g, const char *s, size_t len)
{
    eio_pkt_t p;
    if (eio_parse(s, len, &p) != 0) {
        guest_fail(b, g, ERR_PROTOCOL, "unreadable packet \"%.40s\"", s);
        return;
    }
    switch (p.eio) {
    case EIO_OPEN:
        if (g->state == G_OPEN) {
            g->state = G_ROOT;
            send_text(b, g, "40{\"consent\":true}", 18);
        }
        break;
    case EIO_PING:
        send_text(b, g, "3", 1);
        break;
    case EIO_CLOSE:
        guest_fail(b, g, g->state < G_READY ? ERR_CONNECT : ERR_DISCONNECT, "Engine.IO close from the server");
        break;
    case EIO_MESSAGE:
        on_socketio(b, g, &p);
        break;
    default: /* pong, noop */
        break;
    }
}

static void on_frame(bench_t *b, guest_t *g, const ws_frame_t *f)
{
    switch (f->opcode) {
    case WS_OP_PING:
        ws_frame_append(&g->out, WS_OP_PONG, f->payload, f->len, (uint32_t)bench_rand(b));
        mark_dirty(b, g);
        return;
    case WS_OP_PONG:
        return;
    case WS_OP_CLOSE: {
        int code = f->len >= 2 ? f->payload[0] << 8 | f->payload[1] : 0;
        guest_fail(b, g, g->state < G_READY ? ERR_CONNECT : ERR_DISCONNECT, "WebSocket closed by the server (%d)",
                   code);
        return;
    }
    case WS_OP_BINARY:
        guest_fail(b, g, ERR_PROTOCOL, "a binary frame: the chat contract sends none");
        return;
    }
    int cont = f->opcode == WS_OP_CONT;
    if (cont != ((g->flags & GF_FRAG) != 0)) {
        guest_fail(b, g, ERR_PROTOCOL, "a fragment out of order");
        return;
    }
    if (f->fin && !cont) { /* the usual case: one frame, read in place */
        on_message(b, g, (const char *)f->payload, f->len);
        return;
    }
    buf_append(&g->frag, f->payload, f->len);
    g->flags |= GF_FRAG;
    if (g->frag.len > GUEST_MAX_FRAME) {
        guest_fail(b, g, ERR_PROTOCOL, "a fragmented message over %u bytes", GUEST_MAX_FRAME);
    } else if (f->fin) {
        g->flags &= (uint8_t)~GF_FRAG;
        on_message(b, g, g->frag.base, g->frag.len);
        buf_reset(&g->frag);
    }
}

/* Handles what [data, data+len) holds; returns how much of it was used up. */
static size_t consume(bench_t *b, guest_t *g, const uint8_t *data, size_t len)
{
    size_t off = 0;
    if (g->state == G_UPGRADE) {
        int status;
        long n = ws_handshake_response((const char *)data, len, g->accept, &status);
        if (n == 0)
            return 0;
        if (n < 0) {
            guest_fail(b, g, ERR_CONNECT, "upgrade: %s (HTTP %d)", ws_strerror(n), status);
            return len;
        }
        off = (size_t)n;
        g->state = G_OPEN;
    }
    while (off < len && guest_alive(g)) {
        ws_frame_t f;
        long n = ws_frame_parse(data + off, len - off, GUEST_MAX_FRAME, &f);
        if (n == 0)
            break;
        if (n < 0) {
            guest_fail(b, g, ERR_PROTOCOL, "%s", ws_strerror(n));
            return len;
        }
        off += (size_t)n;
        on_frame(b, g, &f);
    }
    return off;
}

/*
 * New bytes: handled straight from the read buffer when nothing is carried
 * over (the usual case), else after what is; an incomplete frame is kept.
 */
static void on_bytes(bench_t *b, guest_t *g, const uint8_t *data, size_t len)
{
    if (g->in.len == 0) {
        size_t used = consume(b, g, data, len);
        if (guest_alive(g) && used < len)
            buf_append(&g->in, data + used, len - used);
        return;
    }
    buf_append(&g->in, data, len);
    size_t used = consume(b, g, (const uint8_t *)g->in.base, g->in.len);
    if (!guest_alive(g))
        return;
    memmove(g->in.base, g->in.base + used, g->in.len - used);
    g->in.len -= used;
}

static void on_readable(bench_t *b, guest_t *g)
{
    for (int i = 0; i < GUEST_READS_PER_WAKEUP && guest_alive(g); i++) {
        ssize_t n = read(g->fd, b->rbuf, sizeof(b->rbuf));
        if (n > 0) {
            on_bytes(b, g, b->rbuf, (size_t)n);
            if ((size_t)n < sizeof(b->rbuf))
                return; /* drained */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        bench_err_t kind = g->state < G_READY ? ERR_CONNECT : ERR_DISCONNECT;
        if (n == 0)
            guest_fail(b, g, kind, "the server closed the connection");
        else
            guest_fail(b, g, kind, "read: %s", strerror(errno));
    }
}

static void guest_flush(bench_t *b, guest_t *g)
{
    size_t off = 0;
    while (off < g->out.len) {
        ssize_t n = send(g->fd, g->out.base + off, g->out.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            memmove(g->out.base, g->out.base + off, g->out.len - off);
            g->out.len -= off;
            if (!(g->flags & GF_POLLOUT)) {
                g->flags |= GF_POLLOUT;
                epoll_watch(b, g, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
            }
            return;
        }
        guest_fail(b, g, g->state < G_READY ? ERR_CONNECT : ERR_DISCONNECT, "write: %s", strerror(errno));
        return;
    }
    buf_reset(&g->out);
    if (g->flags & GF_POLLOUT) {
        g->flags &= (uint8_t)~GF_POLLOUT;
        epoll_watch(b, g, EPOLLIN | EPOLLRDHUP);
    }
}

void guest_flush_all(bench_t *b)
{
    while (b->dirty != NULL) {
        guest_t *g = b->dirty;
        b->dirty = g->dirty_next;
        g->flags &= (uint8_t)~GF_DIRTY;
        if (guest_alive(g) && g->state != G_TCP)
            guest_flush(b, g);
    }
}

void guest_on_io(bench_t *b, guest_t *g, uint32_t events)
{
    if (!guest_alive(g))
        return;
    if (g->state == G_TCP) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(b, g);
        return;
    }
    if ((events & EPOLLOUT) && g->out.len > 0)
        guest_flush(b, g);
    if (guest_alive(g) && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        on_readable(b, g);
}
