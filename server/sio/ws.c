/*
 * RFC 6455 server framing. Incoming frames are unmasked in place in the
 * socket's input buffer (ws_frame.c); only fragmented messages are copied.
 * Outgoing frames accumulate in `out` over a loop turn (sio_flush_later) and
 * while a write is in flight, and leave together.
 */
#include "ws.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../buf/buf.h"
#include "internal.h"
#include "ws_frame.h"

struct ws_conn {
    sio_flush_t flush; /* first: the flush finds the connection from it */
    h2o_socket_t *sock;
    ws_reader_t rd;
    ws_callbacks_t cb;
    void *data;
    buf_t out;       /* frames waiting for the current write to finish */
    buf_t inflight;  /* frames being written */
    int closing;     /* a close frame is queued: no more frames, no more reads */
    int in_callback; /* free later: a callback is running */
    int dead;        /* the socket is closed; free when the callback returns */
    int close_code;
    /* the answer to the latest ping, sent with the next write: a peer that
     * pings and never reads gets one pong, not a pile (RFC 6455 5.5.3) */
    uint8_t pong[125];
    uint8_t pong_len;
    int pong_due;
    sio_worker_t *w;
    sio_timer_t *linger; /* after a close: the socket goes even if the peer never reads */
};

/* A peer that stops reading never takes its close frame, nor what is queued
 * ahead of it (up to CHATD_MAX_QUEUED_BYTES), and one may never close its
 * side: past this, the socket is dropped and its memory freed. A live peer
 * reads a close and answers it in far less. */
#define WS_CLOSE_LINGER_MS 5000

static void ws_on_read(h2o_socket_t *sock, const char *err);
static void ws_flush(ws_conn_t *ws);

static void ws_flush_deferred(sio_flush_t *f)
{
    ws_flush((ws_conn_t *)f);
}

static void ws_destroy(ws_conn_t *ws)
{
    sio_flush_cancel(&ws->flush);
    sio_timer_free(ws->linger);
    if (ws->sock != NULL)
        h2o_socket_close(ws->sock);
    buf_free(&ws->out);
    buf_free(&ws->inflight);
    ws_reader_free(&ws->rd);
    free(ws);
}

/* The connection is over. Tells the owner unless it started the close. */
static void ws_die(ws_conn_t *ws, int code, int notify)
{
    if (ws->dead)
        return;
    ws->dead = 1;
    if (notify && ws->cb.on_close != NULL)
        ws->cb.on_close(ws, code);
    if (!ws->in_callback)
        ws_destroy(ws);
}

static void ws_on_linger(sio_timer_t *t, void *ud)
{
    ws_conn_t *ws = ud;
    ws_die(ws, ws->close_code, 0);
}

ws_conn_t *ws_conn_new(sio_worker_t *w, h2o_socket_t *sock, size_t max_payload, const ws_callbacks_t *cb, void *data)
{
    ws_conn_t *ws = buf_xcalloc(1, sizeof(*ws));
    ws->w = w;
    ws->flush.run = ws_flush_deferred;
    ws->sock = sock;
    ws_reader_init(&ws->rd, max_payload);
    ws->cb = *cb;
    ws->data = data;
    sock->data = ws;
    return ws;
}

void ws_conn_start(ws_conn_t *ws)
{
    h2o_socket_read_start(ws->sock, ws_on_read);
    /* bytes that arrived with the upgrade request are already in the buffer */
    if (ws->sock->input->size != 0)
        ws_on_read(ws->sock, NULL);
}

void *ws_conn_data(ws_conn_t *ws)
{
    return ws->data;
}
void ws_conn_set_data(ws_conn_t *ws, void *data)
{
    ws->data = data;
}

static void ws_append_frame(buf_t *out, int opcode, const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen > SIZE_MAX - 10 || blen > SIZE_MAX - 10 - alen)
        abort(); /* no message of ours comes near; the sum must not wrap */
    size_t len = alen + blen;
    uint8_t hdr[10];
    size_t hlen;
    hdr[0] = 0x80 | (uint8_t)opcode;
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        hlen = 2;
    } else if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        hlen = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hlen = 10;
    }
    buf_reserve(out, hlen + len);
    buf_append(out, hdr, hlen);
    if (alen)
        buf_append(out, a, alen);
    if (blen)
        buf_append(out, b, blen);
}

/* After our close frame: what the peer still sends is read and dropped until it closes. */
static void ws_on_drain(h2o_socket_t *sock, const char *err)
{
    ws_conn_t *ws = sock->data;
    if (err != NULL) {
        ws_die(ws, ws->close_code, 0);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

/*
 * The close frame is written. Closing the socket now, with input unread,
 * would make the kernel send a reset, and a reset makes the peer's kernel
 * drop what it received and has not read yet: the close frame and what
 * came before it. So the write side is shut (the peer reads to the end and
 * sees the close), the input is drained, and the socket goes when the peer
 * closes, or when the linger timer says so.
 */
static void ws_closed_written(ws_conn_t *ws)
{
    shutdown(h2o_socket_get_fd(ws->sock), SHUT_WR);
    h2o_socket_read_start(ws->sock, ws_on_drain);
    h2o_buffer_consume(&ws->sock->input, ws->sock->input->size);
}

static void ws_on_write(h2o_socket_t *sock, const char *err)
{
    ws_conn_t *ws = sock->data;
    buf_reset(&ws->inflight);
    if (err != NULL) {
        ws_die(ws, 1006, 1);
        return;
    }
    if (ws->out.len != 0 || ws->pong_due) {
        ws_flush(ws);
    } else if (ws->closing) {
        ws_closed_written(ws);
    }
}

size_t ws_conn_queued(const ws_conn_t *ws)
{
    return ws->out.len + ws->inflight.len;
}

static void ws_flush(ws_conn_t *ws)
{
    if (ws->dead || h2o_socket_is_writing(ws->sock))
        return;
    if (ws->pong_due && !ws->closing) {
        ws->pong_due = 0;
        ws_append_frame(&ws->out, WS_OP_PONG, ws->pong, ws->pong_len, NULL, 0);
    }
    if (ws->out.len == 0)
        return;
    buf_t tmp = ws->inflight;
    ws->inflight = ws->out;
    ws->out = tmp;
    h2o_iovec_t vec = h2o_iovec_init(ws->inflight.base, ws->inflight.len);
    h2o_socket_write(ws->sock, &vec, 1, ws_on_write);
}

void ws_conn_send(ws_conn_t *ws, int binary, const void *a, size_t alen, const void *b, size_t blen)
{
    if (ws->closing || ws->dead)
        return;
    ws_append_frame(&ws->out, binary ? WS_OP_BINARY : WS_OP_TEXT, a, alen, b, blen);
    sio_flush_later(&ws->flush); /* with whatever else this turn sends it */
}

void ws_conn_flush_now(ws_conn_t *ws)
{
    sio_flush_cancel(&ws->flush);
    ws_flush(ws);
}

void ws_conn_close(ws_conn_t *ws, int code)
{
    if (ws->closing || ws->dead)
        return;
    ws->closing = 1;
    ws->close_code = code;
    /* 1006 "ping timeout" and the like are names for metrics; RFC 6455
     * 7.4.1 forbids them in a frame, and strict clients fail on them */
    int wire = ws_close_code_valid(code) ? code : 1000;
    uint8_t payload[2] = {(uint8_t)(wire >> 8), (uint8_t)wire};
    ws_append_frame(&ws->out, WS_OP_CLOSE, payload, 2, NULL, 0);
    h2o_socket_read_stop(ws->sock);
    ws->linger = sio_timer_new(ws->w, ws_on_linger, ws);
    sio_timer_start(ws->linger, WS_CLOSE_LINGER_MS);
    if (h2o_socket_is_writing(ws->sock))
        return;
    ws_flush(ws);
}

/* Protocol violation by the peer: answer with a close code and stop reading. */
static void ws_fail(ws_conn_t *ws, int code)
{
    ws_callbacks_t cb = ws->cb;
    ws_conn_close(ws, code);
    if (cb.on_close != NULL) {
        ws->in_callback++;
        cb.on_close(ws, code);
        ws->in_callback--;
    }
}

static void ws_deliver(ws_conn_t *ws, int opcode, uint8_t *data, size_t len)
{
    ws->in_callback++;
    ws->cb.on_message(ws, opcode == WS_OP_BINARY, data, len);
    ws->in_callback--;
}

/* A Close frame from the peer: answer it (RFC 6455 5.5.1) and stop. */
static void ws_on_peer_close(ws_conn_t *ws, const ws_event_t *ev)
{
    int code = ev->len >= 2 ? (ev->data[0] << 8) | ev->data[1] : 1005;
    int reply = ws_close_reply(ev->data, ev->len);
    h2o_buffer_consume(&ws->sock->input, ev->consumed);
    ws_callbacks_t cb = ws->cb;
    ws_conn_close(ws, reply);
    if (cb.on_close != NULL) {
        ws->in_callback++;
        cb.on_close(ws, code);
        ws->in_callback--;
    }
}

/*
 * Handles as many complete frames as the input holds. Returns 0 to go on
 * reading, -1 when the connection is closing or dead.
 */
static int ws_parse(ws_conn_t *ws)
{
    while (!ws->closing && !ws->dead) {
        /* re-read every turn: consuming the last byte replaces the buffer */
        h2o_buffer_t *in = ws->sock->input;
        ws_event_t ev;
        int rc = ws_reader_next(&ws->rd, (uint8_t *)in->bytes, in->size, &ev);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            ws_fail(ws, -rc);
            return -1;
        }
        switch (ev.opcode) {
        case WS_OP_CLOSE:
            ws_on_peer_close(ws, &ev);
            return -1;
        case WS_OP_PING:
            memcpy(ws->pong, ev.data, ev.len); /* <= 125: the reader checks */
            ws->pong_len = (uint8_t)ev.len;
            ws->pong_due = 1;
            h2o_buffer_consume(&ws->sock->input, ev.consumed);
            ws_flush(ws);
            break;
        case WS_OP_PONG:
        case WS_OP_CONT:
            h2o_buffer_consume(&ws->sock->input, ev.consumed);
            break;
        default:
            /* the callback may close us, and the message may lie in the
             * input: consume only after it returns */
            ws_deliver(ws, ev.opcode, ev.data, ev.len);
            if (ws->dead)
                return -1;
            h2o_buffer_consume(&ws->sock->input, ev.consumed);
        }
    }
    return -1;
}

static void ws_on_read(h2o_socket_t *sock, const char *err)
{
    ws_conn_t *ws = sock->data;
    if (err != NULL) {
        ws_die(ws, 1006, 1);
        return;
    }
    ws->in_callback++;
    ws_parse(ws);
    ws->in_callback--;
    if (ws->dead) {
        if (ws->in_callback == 0)
            ws_destroy(ws);
        return;
    }
    ws_flush(ws);
}
