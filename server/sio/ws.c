/*
 * RFC 6455 server framing. Incoming frames are unmasked in place in the
 * socket's input buffer; only fragmented messages are copied, into `frag`.
 * Outgoing frames accumulate in `out` over a loop turn (sio_flush_later) and
 * while a write is in flight, and leave together.
 */
#include "ws.h"

#include <string.h>

#include "../buf/buf.h"
#include "internal.h"

enum { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9, WS_OP_PONG = 10 };

struct ws_conn {
    sio_flush_t flush; /* first: the flush finds the connection from it */
    h2o_socket_t *sock;
    size_t max_payload;
    ws_callbacks_t cb;
    void *data;
    buf_t out;      /* frames waiting for the current write to finish */
    buf_t inflight; /* frames being written */
    buf_t frag;     /* a fragmented message being assembled */
    int frag_opcode;
    int closing;     /* a close frame is queued: no more frames, no more reads */
    int in_callback; /* free later: a callback is running */
    int dead;        /* the socket is closed; free when the callback returns */
    int close_code;
    /* the answer to the latest ping, sent with the next write: a peer that
     * pings and never reads gets one pong, not a pile (RFC 6455 5.5.3) */
    uint8_t pong[125];
    uint8_t pong_len;
    int pong_due;
};

static void ws_on_read(h2o_socket_t *sock, const char *err);
static void ws_flush(ws_conn_t *ws);

static void ws_flush_deferred(sio_flush_t *f)
{
    ws_flush((ws_conn_t *)f);
}

static void ws_destroy(ws_conn_t *ws)
{
    sio_flush_cancel(&ws->flush);
    if (ws->sock != NULL)
        h2o_socket_close(ws->sock);
    buf_free(&ws->out);
    buf_free(&ws->inflight);
    buf_free(&ws->frag);
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

ws_conn_t *ws_conn_new(h2o_socket_t *sock, size_t max_payload, const ws_callbacks_t *cb, void *data)
{
    ws_conn_t *ws = buf_xcalloc(1, sizeof(*ws));
    ws->flush.run = ws_flush_deferred;
    ws->sock = sock;
    ws->max_payload = max_payload;
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
        ws_die(ws, ws->close_code, 0);
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

void ws_conn_close(ws_conn_t *ws, int code)
{
    if (ws->closing || ws->dead)
        return;
    ws->closing = 1;
    ws->close_code = code;
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    ws_append_frame(&ws->out, WS_OP_CLOSE, payload, 2, NULL, 0);
    h2o_socket_read_stop(ws->sock);
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

/*
 * Parses as many complete frames as the input holds. Returns 0 to go on
 * reading, -1 when the connection is closing or dead.
 */
static int ws_parse(ws_conn_t *ws)
{
    while (!ws->closing && !ws->dead) {
        /* re-read every turn: consuming the last byte replaces the buffer */
        h2o_buffer_t *in = ws->sock->input;
        uint8_t *p = (uint8_t *)in->bytes;
        size_t avail = in->size;
        if (avail < 2)
            return 0;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hlen = 2;
        if ((p[0] & 0x70) != 0 || !masked) {
            ws_fail(ws, 1002);
            return -1;
        }
        if (len == 126) {
            if (avail < 4)
                return 0;
            len = ((uint64_t)p[2] << 8) | p[3];
            hlen = 4;
        } else if (len == 127) {
            if (avail < 10)
                return 0;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            hlen = 10;
        }
        int control = opcode >= 8;
        if (control && (!fin || len > 125)) {
            ws_fail(ws, 1002);
            return -1;
        }
        if (!control && opcode != WS_OP_CONT && opcode != WS_OP_TEXT && opcode != WS_OP_BINARY) {
            ws_fail(ws, 1002);
            return -1;
        }
        if (control && opcode != WS_OP_CLOSE && opcode != WS_OP_PING && opcode != WS_OP_PONG) {
            ws_fail(ws, 1002);
            return -1;
        }
        if (!control && len + (opcode == WS_OP_CONT ? ws->frag.len : 0) > ws->max_payload) {
            ws_fail(ws, 1009);
            return -1;
        }
        if (avail < hlen + 4 + len)
            return 0;
        uint8_t *mask = p + hlen, *payload = p + hlen + 4;
        for (uint64_t i = 0; i < len; i++)
            payload[i] ^= mask[i & 3];
        size_t consumed = hlen + 4 + (size_t)len;

        if (opcode == WS_OP_CLOSE) {
            int code = len >= 2 ? (payload[0] << 8) | payload[1] : 1005;
            h2o_buffer_consume(&ws->sock->input, consumed);
            ws_callbacks_t cb = ws->cb;
            /* echo the close, as RFC 6455 5.5.1 asks */
            ws_conn_close(ws, code == 1005 ? 1000 : code);
            if (cb.on_close != NULL) {
                ws->in_callback++;
                cb.on_close(ws, code);
                ws->in_callback--;
            }
            return -1;
        }
        if (opcode == WS_OP_PING) {
            memcpy(ws->pong, payload, (size_t)len); /* len <= 125: checked above */
            ws->pong_len = (uint8_t)len;
            ws->pong_due = 1;
            h2o_buffer_consume(&ws->sock->input, consumed);
            ws_flush(ws);
            continue;
        }
        if (opcode == WS_OP_PONG) {
            h2o_buffer_consume(&ws->sock->input, consumed);
            continue;
        }
        if (opcode == WS_OP_CONT) {
            if (ws->frag_opcode == 0) {
                ws_fail(ws, 1002);
                return -1;
            }
            buf_append(&ws->frag, payload, (size_t)len);
            h2o_buffer_consume(&ws->sock->input, consumed);
            if (fin) {
                int op = ws->frag_opcode;
                ws->frag_opcode = 0;
                ws_deliver(ws, op, (uint8_t *)ws->frag.base, ws->frag.len);
                buf_reset(&ws->frag);
            }
            continue;
        }
        if (ws->frag_opcode != 0) {
            ws_fail(ws, 1002);
            return -1;
        }
        if (!fin) {
            ws->frag_opcode = opcode;
            buf_append(&ws->frag, payload, (size_t)len);
            h2o_buffer_consume(&ws->sock->input, consumed);
            continue;
        }
        /* The common case: one whole frame, handed over in place. The
         * callback may close us, so the input is consumed only after. */
        ws_deliver(ws, opcode, payload, (size_t)len);
        if (ws->dead)
            return -1;
        h2o_buffer_consume(&ws->sock->input, consumed);
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
