/*
 * RFC 6455 frame reading. Lengths come from the peer as 64-bit numbers, so
 * each comparison is written as "what is left" against "what is claimed"
 * (never header + length, never stored + length), which cannot wrap.
 */
#include "ws_frame.h"

#include <string.h>

void ws_reader_init(ws_reader_t *r, size_t max_payload)
{
    memset(r, 0, sizeof(*r));
    r->max_payload = max_payload;
}

void ws_reader_free(ws_reader_t *r)
{
    buf_free(&r->frag);
    r->frag_opcode = 0;
    r->frag_done = 0;
}

/* The header's fixed part says whether the frame can be legal at all. */
static int check_opcode(const ws_reader_t *r, int fin, int opcode)
{
    if (opcode >= 8) {
        if (!fin)
            return -1002; /* control frames are never fragmented (5.5) */
        return opcode == WS_OP_CLOSE || opcode == WS_OP_PING || opcode == WS_OP_PONG ? 0 : -1002;
    }
    if (opcode == WS_OP_CONT)
        return r->frag_opcode != 0 ? 0 : -1002;
    if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)
        return -1002;
    return r->frag_opcode == 0 ? 0 : -1002; /* a new message inside an open one */
}

int ws_reader_next(ws_reader_t *r, uint8_t *p, size_t avail, ws_event_t *ev)
{
    if (r->frag_done) {
        buf_reset(&r->frag);
        r->frag_done = 0;
    }
    if (avail < 2)
        return 0;
    int fin = (p[0] & 0x80) != 0, opcode = p[0] & 0x0f;
    if ((p[0] & 0x70) != 0 || (p[1] & 0x80) == 0)
        return -1002; /* no extension was negotiated; clients must mask (5.1) */
    int rc = check_opcode(r, fin, opcode);
    if (rc != 0)
        return rc;
    uint64_t len = p[1] & 0x7f;
    size_t hlen = 2;
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        hlen = 4;
    } else if (len == 127) {
        if (avail < 10)
            return 0;
        if (p[2] & 0x80)
            return -1002; /* the most significant bit must be 0 (5.2) */
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        hlen = 10;
    }
    if (opcode >= 8) {
        if (len > 125)
            return -1002;
    } else {
        /* frag.len <= max_payload always holds: it only grows past this check */
        size_t room = r->max_payload - (opcode == WS_OP_CONT ? r->frag.len : 0);
        if (len > room)
            return -1009;
    }
    /* avail >= hlen here; the mask takes 4 more bytes */
    if (avail - hlen < 4 || avail - hlen - 4 < len)
        return 0;
    const uint8_t *mask = p + hlen;
    uint8_t *payload = p + hlen + 4;
    size_t n = (size_t)len;
    for (size_t i = 0; i < n; i++)
        payload[i] ^= mask[i & 3];

    ev->consumed = hlen + 4 + n;
    ev->opcode = opcode;
    ev->data = payload;
    ev->len = n;
    if (opcode >= 8)
        return 1;
    if (opcode != WS_OP_CONT && fin)
        return 1; /* the common case: one whole message, in place */
    if (opcode != WS_OP_CONT)
        r->frag_opcode = opcode;
    buf_append(&r->frag, payload, n);
    if (!fin) {
        ev->opcode = WS_OP_CONT;
        ev->data = NULL;
        ev->len = 0;
        return 1;
    }
    ev->opcode = r->frag_opcode;
    ev->data = (uint8_t *)r->frag.base;
    ev->len = r->frag.len;
    r->frag_opcode = 0;
    r->frag_done = 1;
    return 1;
}

int ws_close_code_valid(int code)
{
    if (code >= 1000 && code <= 1014)
        return code != 1004 && code != 1005 && code != 1006;
    return code >= 3000 && code <= 4999;
}

int ws_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

int ws_close_reply(const uint8_t *payload, size_t len)
{
    if (len == 0)
        return 1000;
    if (len == 1)
        return 1002;
    int code = (payload[0] << 8) | payload[1];
    if (!ws_close_code_valid(code))
        return 1002;
    return ws_utf8_valid(payload + 2, len - 2) ? code : 1007;
}
