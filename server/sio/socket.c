/*
 * The Socket.IO v5 layer over one Engine.IO session: namespaces, events,
 * acks in both directions, binary attachments and the connect timeout.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "../log/log.h"
#include "internal.h"
#include "sio_packet.h"

typedef struct sio_ack_wait {
    int64_t id;
    sio_ack_cb cb;
    void *ud;
    struct sio_ack_wait *next;
} sio_ack_wait_t;

typedef enum sio_socket_state { SIO_PENDING, SIO_CONNECTED } sio_socket_state_t;

struct sio_socket {
    struct sio_conn *conn;
    sio_nsp_t *nsp;
    sio_socket_state_t state;
    char id[21];
    void *data;
    int64_t next_ack;
    sio_ack_wait_t *acks;
    struct sio_socket *next;
};

typedef struct sio_conn {
    eio_session_t *e;
    sio_socket_t *sockets;
    int got_connect;
    sio_binary_t partial; /* a binary packet waiting for its attachments */
} sio_conn_t;

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    eio_session_t *e = H2O_STRUCT_FROM_MEMBER(eio_session_t, connect_entry, entry);
    eio_session_close(e, 1008, "connect timeout");
}

void sio_conn_open(eio_session_t *e)
{
    sio_conn_t *c = buf_xcalloc(1, sizeof(*c));
    c->e = e;
    /* one packet's attachments may total what one message may carry */
    sio_binary_init(&c->partial, e->worker->srv->opt.max_payload);
    e->conn = c;
    e->connect_entry.cb = on_connect_timeout;
    h2o_timeout_link(e->worker->loop, &e->worker->connect_timeout, &e->connect_entry);
}

static sio_socket_t *find_socket(sio_conn_t *c, const char *nsp, size_t len)
{
    for (sio_socket_t *s = c->sockets; s != NULL; s = s->next)
        if (strlen(s->nsp->name) == len && memcmp(s->nsp->name, nsp, len) == 0)
            return s;
    return NULL;
}

static sio_nsp_t *find_nsp(sio_server_t *srv, const char *nsp, size_t len)
{
    for (sio_nsp_t *n = srv->nsps; n != NULL; n = n->next)
        if (strlen(n->name) == len && memcmp(n->name, nsp, len) == 0)
            return n;
    return NULL;
}

static void unlink_socket(sio_socket_t *s)
{
    for (sio_socket_t **pp = &s->conn->sockets; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

/* Ends a socket: pending acks get NULL, the app hears about it, memory goes. */
static void free_socket(sio_socket_t *s, const char *reason)
{
    unlink_socket(s);
    while (s->acks != NULL) {
        sio_ack_wait_t *a = s->acks;
        s->acks = a->next;
        a->cb(s, NULL, NULL, 0, a->ud);
        free(a);
    }
    if (s->nsp->on_disconnect != NULL)
        s->nsp->on_disconnect(s, reason, s->nsp->on_disconnect_ud);
    free(s);
}

void sio_conn_closed(eio_session_t *e, const char *reason)
{
    sio_conn_t *c = e->conn;
    while (c->sockets != NULL)
        free_socket(c->sockets, reason);
    sio_binary_clear(&c->partial);
    e->conn = NULL;
    free(c);
}

/* ---- sending ---- */

static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    buf_append(data, buffer, size);
    return 0;
}

static void append_json(buf_t *out, json_t *v)
{
    json_dump_callback(v, dump_to_buf, out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

/* Sends one packet: header, JSON payload, then the attachments. */
static void send_packet(sio_socket_t *s, sio_ptype_t type, int64_t ack_id, json_t *payload, const sio_bin_t *bins,
                        size_t nbins)
{
    eio_session_t *e = s->conn->e;
    buf_t b = BUF_INIT;
    if (nbins > 0 && type == SIO_EVENT)
        type = SIO_BINARY_EVENT;
    if (nbins > 0 && type == SIO_ACK)
        type = SIO_BINARY_ACK;
    sio_packet_encode_header(&b, type, (unsigned)nbins, s->nsp->name, strlen(s->nsp->name), ack_id);
    if (payload != NULL)
        append_json(&b, payload);
    eio_session_send(e, EIO_MESSAGE, 0, b.base, b.len);
    buf_free(&b);
    for (size_t i = 0; i < nbins; i++)
        eio_session_send(e, EIO_MESSAGE, 1, bins[i].data, bins[i].len);
}

static json_t *event_array(const char *event, json_t *args)
{
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(event));
    if (args != NULL)
        json_array_extend(arr, args);
    return arr;
}

void sio_socket_emit_bin(sio_socket_t *s, const char *event, json_t *args, const sio_bin_t *bins, size_t nbins)
{
    SIO_OWNER(s->conn->e->worker);
    if (s->state != SIO_CONNECTED)
        return;
    json_t *arr = event_array(event, args);
    send_packet(s, SIO_EVENT, -1, arr, bins, nbins);
    json_decref(arr);
}

void sio_socket_emit(sio_socket_t *s, const char *event, json_t *args)
{
    sio_socket_emit_bin(s, event, args, NULL, 0);
}

void sio_socket_emit_ack(sio_socket_t *s, const char *event, json_t *args, sio_ack_cb cb, void *ud)
{
    SIO_OWNER(s->conn->e->worker);
    if (s->state != SIO_CONNECTED) {
        cb(s, NULL, NULL, 0, ud);
        return;
    }
    sio_ack_wait_t *a = buf_xcalloc(1, sizeof(*a));
    a->id = s->next_ack++;
    a->cb = cb;
    a->ud = ud;
    a->next = s->acks;
    s->acks = a;
    json_t *arr = event_array(event, args);
    send_packet(s, SIO_EVENT, a->id, arr, NULL, 0);
    json_decref(arr);
}

/* A packet whose JSON array is `[` `head` `args` `]`, written without a JSON tree. */
static void send_text_packet(sio_socket_t *s, sio_ptype_t type, int64_t ack_id, const char *head, const char *args,
                             size_t len)
{
    buf_t b = BUF_INIT;
    buf_reserve(&b, 64 + strlen(head) + len);
    sio_packet_encode_header(&b, type, 0, s->nsp->name, strlen(s->nsp->name), ack_id);
    buf_append_char(&b, '[');
    buf_append_str(&b, head);
    buf_append(&b, args, len);
    buf_append_char(&b, ']');
    eio_session_send(s->conn->e, EIO_MESSAGE, 0, b.base, b.len);
    buf_free(&b);
}

void sio_socket_emit_text(sio_socket_t *s, const char *event, const char *args, size_t len, sio_ack_cb cb, void *ud)
{
    SIO_OWNER(s->conn->e->worker);
    if (s->state != SIO_CONNECTED) {
        if (cb != NULL)
            cb(s, NULL, NULL, 0, ud);
        return;
    }
    int64_t id = -1;
    if (cb != NULL) {
        sio_ack_wait_t *a = buf_xcalloc(1, sizeof(*a));
        id = a->id = s->next_ack++;
        a->cb = cb;
        a->ud = ud;
        a->next = s->acks;
        s->acks = a;
    }
    char head[128];
    snprintf(head, sizeof(head), "\"%s\"%s", event, len > 0 ? "," : "");
    send_text_packet(s, SIO_EVENT, id, head, args, len);
}

void sio_socket_ack_text(sio_socket_t *s, int64_t ack_id, const char *args, size_t len)
{
    SIO_OWNER(s->conn->e->worker);
    if (s->state != SIO_CONNECTED || ack_id < 0)
        return;
    send_text_packet(s, SIO_ACK, ack_id, "", args, len);
}

void sio_socket_ack_bin(sio_socket_t *s, int64_t ack_id, json_t *args, const sio_bin_t *bins, size_t nbins)
{
    SIO_OWNER(s->conn->e->worker);
    if (s->state != SIO_CONNECTED || ack_id < 0)
        return;
    json_t *empty = NULL;
    if (args == NULL)
        args = empty = json_array();
    send_packet(s, SIO_ACK, ack_id, args, bins, nbins);
    json_decref(empty);
}

void sio_socket_ack(sio_socket_t *s, int64_t ack_id, json_t *args)
{
    sio_socket_ack_bin(s, ack_id, args, NULL, 0);
}

void sio_socket_accept(sio_socket_t *s)
{
    SIO_OWNER(s->conn->e->worker);
    if (s->state != SIO_PENDING)
        return;
    s->state = SIO_CONNECTED;
    json_t *hs = json_pack("{s:s}", "sid", s->id);
    send_packet(s, SIO_CONNECT, -1, hs, NULL, 0);
    json_decref(hs);
}

void sio_socket_reject(sio_socket_t *s, json_t *data)
{
    SIO_OWNER(s->conn->e->worker);
    send_packet(s, SIO_CONNECT_ERROR, -1, data, NULL, 0);
    json_decref(data);
    unlink_socket(s);
    free(s);
}

void sio_socket_disconnect(sio_socket_t *s)
{
    SIO_OWNER(s->conn->e->worker);
    send_packet(s, SIO_DISCONNECT, -1, NULL, NULL, 0);
    free_socket(s, "server namespace disconnect");
}

void sio_socket_close_connection(sio_socket_t *s)
{
    SIO_OWNER(s->conn->e->worker);
    eio_session_close(s->conn->e, 1000, "server close");
}

const char *sio_socket_id(const sio_socket_t *s)
{
    return s->id;
}
const char *sio_socket_nsp(const sio_socket_t *s)
{
    return s->nsp->name;
}
const char *sio_socket_remote_addr(const sio_socket_t *s)
{
    return s->conn->e->addr;
}
void sio_socket_set_data(sio_socket_t *s, void *data)
{
    s->data = data;
}
void *sio_socket_data(const sio_socket_t *s)
{
    return s->data;
}

sio_socket_t *sio_socket_sibling(sio_socket_t *s, const char *nsp)
{
    sio_socket_t *o = find_socket(s->conn, nsp, strlen(nsp));
    return o != NULL && o->state == SIO_CONNECTED ? o : NULL;
}

/* ---- receiving ---- */

static void send_connect_error(sio_conn_t *c, const char *nsp, size_t nsp_len, const char *message)
{
    buf_t b = BUF_INIT;
    sio_packet_encode_header(&b, SIO_CONNECT_ERROR, 0, nsp, nsp_len, -1);
    json_t *err = json_pack("{s:s}", "message", message);
    append_json(&b, err);
    json_decref(err);
    eio_session_send(c->e, EIO_MESSAGE, 0, b.base, b.len);
    buf_free(&b);
}

static void on_connect_packet(sio_conn_t *c, sio_packet_t *p)
{
    eio_session_t *e = c->e;
    if (!c->got_connect) {
        c->got_connect = 1;
        h2o_timeout_unlink(&e->connect_entry);
    }
    sio_nsp_t *nsp = find_nsp(e->worker->srv, p->nsp, p->nsp_len);
    if (nsp == NULL) {
        send_connect_error(c, p->nsp, p->nsp_len, "Invalid namespace");
        return;
    }
    if (find_socket(c, p->nsp, p->nsp_len) != NULL) {
        /* the reference server treats a second CONNECT as a protocol error */
        eio_session_close(e, 1002, "duplicate connect");
        return;
    }
    sio_socket_t *s = buf_xcalloc(1, sizeof(*s));
    s->conn = c;
    s->nsp = nsp;
    s->state = SIO_PENDING;
    uint8_t rnd[20];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        abort();
    for (int i = 0; i < 20; i++)
        s->id[i] = sio_b64url[rnd[i] & 63];
    s->next = c->sockets;
    c->sockets = s;
    if (nsp->on_connect == NULL) {
        sio_socket_accept(s);
        return;
    }
    json_t *auth = p->payload != NULL ? json_incref(p->payload) : json_object();
    nsp->on_connect(s, auth, nsp->on_connect_ud);
    json_decref(auth);
}

static void on_event_packet(sio_conn_t *c, sio_packet_t *p, const sio_bin_t *bins, size_t nbins)
{
    sio_socket_t *s = find_socket(c, p->nsp, p->nsp_len);
    if (s == NULL || s->state != SIO_CONNECTED)
        return; /* as the reference server: events of an unconnected namespace are dropped */
    json_t *name = json_array_get(p->payload, 0);
    char numbuf[32];
    const char *event = json_string_value(name);
    if (event == NULL) {
        snprintf(numbuf, sizeof(numbuf), "%g", json_number_value(name));
        event = numbuf;
    }
    for (sio_handler_t *h = s->nsp->handlers; h != NULL; h = h->next) {
        if (strcmp(h->event, event) == 0) {
            json_t *args = json_array();
            for (size_t i = 1; i < json_array_size(p->payload); i++)
                json_array_append(args, json_array_get(p->payload, i));
            h->cb(s, args, p->ack_id, bins, nbins, h->ud);
            json_decref(args);
            return;
        }
    }
}

static void on_ack_packet(sio_conn_t *c, sio_packet_t *p, const sio_bin_t *bins, size_t nbins)
{
    sio_socket_t *s = find_socket(c, p->nsp, p->nsp_len);
    if (s == NULL)
        return;
    for (sio_ack_wait_t **pp = &s->acks; *pp != NULL; pp = &(*pp)->next) {
        sio_ack_wait_t *a = *pp;
        if (a->id == p->ack_id) {
            *pp = a->next;
            a->cb(s, p->payload, bins, nbins, a->ud);
            free(a);
            return;
        }
    }
}

static void dispatch(sio_conn_t *c, sio_packet_t *p, const sio_bin_t *bins, size_t nbins)
{
    switch (p->type) {
    case SIO_CONNECT:
        on_connect_packet(c, p);
        break;
    case SIO_DISCONNECT: {
        sio_socket_t *s = find_socket(c, p->nsp, p->nsp_len);
        if (s != NULL)
            free_socket(s, "client namespace disconnect");
        break;
    }
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        on_event_packet(c, p, bins, nbins);
        break;
    case SIO_ACK:
    case SIO_BINARY_ACK:
        on_ack_packet(c, p, bins, nbins);
        break;
    case SIO_CONNECT_ERROR:
    default:
        eio_session_close(c->e, 1002, "unexpected packet");
        break;
    }
}

/* The packet and its attachments leave `c` before dispatch: a handler may
 * close the connection, which frees `c`. */
static void dispatch_partial(sio_conn_t *c)
{
    sio_binary_t done;
    sio_bin_t bins[SIO_ATTACHMENTS_MAX] = {{0}};
    sio_binary_take(&c->partial, &done);
    for (size_t i = 0; i < done.nbins; i++) {
        bins[i].data = (const uint8_t *)done.bins[i].base;
        bins[i].len = done.bins[i].len;
    }
    dispatch(c, &done.packet, bins, done.nbins);
    sio_binary_clear(&done);
}

void sio_conn_on_message(eio_session_t *e, int binary, const uint8_t *data, size_t len)
{
    sio_conn_t *c = e->conn;
    if (c == NULL)
        return;
    if (binary) {
        int r = sio_binary_add(&c->partial, data, len);
        if (r == 1)
            dispatch_partial(c);
        else if (r == SIO_ERR_TOO_BIG)
            eio_session_close(e, 1009, "attachments too big");
        else if (r < 0)
            eio_session_close(e, 1002, "unexpected attachment");
        return;
    }
    if (c->partial.waiting) {
        eio_session_close(e, 1002, "text while awaiting attachments");
        return;
    }
    sio_packet_t p;
    int err = sio_packet_parse((const char *)data, len, &p);
    if (err != 0) {
        log_debug("bad socket.io packet", json_pack("{s:s,s:s}", "sid", e->sid, "error", sio_packet_strerror(err)));
        eio_session_close(e, 1002, "parse error");
        return;
    }
    if ((p.type == SIO_BINARY_EVENT || p.type == SIO_BINARY_ACK) && p.attachments > 0) {
        /* `data` is gone when the attachments come: the packet takes copies */
        sio_binary_start(&c->partial, &p);
        return;
    }
    dispatch(c, &p, NULL, 0);
    sio_packet_clear(&p);
}

sio_worker_t *sio_socket_worker(const sio_socket_t *s)
{
    return s->conn->e->worker;
}

sio_socket_t *sio_socket_sibling_pending(sio_socket_t *s, const char *nsp)
{
    return find_socket(s->conn, nsp, strlen(nsp));
}

int sio_socket_connected(const sio_socket_t *s)
{
    return s->state == SIO_CONNECTED;
}
