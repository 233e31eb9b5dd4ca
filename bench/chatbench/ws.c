/*
 * ws: RFC 6455 client codec. The server's frames are never masked and
 * chatd never fragments, but both are handled as the RFC says so that the
 * benchmark measures the server rather than trips over it.
 */
#include "ws.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* Limit on the upgrade answer: chatd's is a few hundred bytes. */
#define WS_MAX_HEADERS 8192

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* The Accept value for a base64 key: base64(SHA-1(key + GUID)). */
static void ws_accept_for(const char *key, size_t key_len, char accept[WS_ACCEPT_LEN + 1])
{
    char in[64];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    memcpy(in, key, key_len);
    memcpy(in + key_len, ws_guid, sizeof(ws_guid) - 1);
    EVP_Digest(in, key_len + sizeof(ws_guid) - 1, md, &md_len, EVP_sha1(), NULL);
    buf_t b = BUF_INIT;
    buf_append_base64(&b, md, md_len);
    memcpy(accept, b.base, WS_ACCEPT_LEN);
    accept[WS_ACCEPT_LEN] = '\0';
    buf_free(&b);
}

void ws_handshake_request(buf_t *out, const char *hostport, const char *path, const uint8_t nonce[16],
                          char accept[WS_ACCEPT_LEN + 1])
{
    buf_append_str(out, "GET ");
    buf_append_str(out, path);
    buf_append_str(out, " HTTP/1.1\r\nHost: ");
    buf_append_str(out, hostport);
    buf_append_str(out, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: ");
    size_t key_at = out->len;
    buf_append_base64(out, nonce, 16);
    ws_accept_for(out->base + key_at, out->len - key_at, accept);
    buf_append_str(out, "\r\n\r\n");
}

/* Whether the header line [p, end) is `name: value` with value == want (spaces trimmed). */
static int header_is(const char *p, const char *end, const char *name, const char *want)
{
    size_t n = strlen(name);
    if ((size_t)(end - p) <= n || strncasecmp(p, name, n) != 0 || p[n] != ':')
        return 0;
    p += n + 1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (size_t)(end - p) == strlen(want) && memcmp(p, want, (size_t)(end - p)) == 0;
}

long ws_handshake_response(const char *data, size_t len, const char *accept, int *status)
{
    *status = 0;
    const char *stop = memmem(data, len, "\r\n\r\n", 4);
    if (stop == NULL)
        return len > WS_MAX_HEADERS ? WS_ERR_HEADERS : 0;
    const char *eol = memmem(data, (size_t)(stop - data) + 2, "\r\n", 2);
    /* "HTTP/1.1 101 Switching Protocols": the code is at a fixed place */
    if (eol - data >= 12 && memcmp(data, "HTTP/1.", 7) == 0 && data[8] == ' ')
        *status = (data[9] - '0') * 100 + (data[10] - '0') * 10 + (data[11] - '0');
    if (*status != 101)
        return WS_ERR_STATUS;
    int accepted = 0;
    for (const char *p = eol + 2; p < stop;) {
        const char *e = memmem(p, (size_t)(stop - p) + 2, "\r\n", 2);
        accepted |= header_is(p, e, "sec-websocket-accept", accept);
        p = e + 2;
    }
    return accepted ? (long)(stop + 4 - data) : WS_ERR_ACCEPT;
}

void ws_frame_append(buf_t *out, int opcode, const void *payload, size_t len, uint32_t mask)
{
    buf_reserve(out, len + 14);
    uint8_t *h = (uint8_t *)out->base + out->len;
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t m[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8), (uint8_t)mask};
    memcpy(h + n, m, 4);
    n += 4;
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        h[n + i] = src[i] ^ m[i & 3];
    out->len += n + len;
}

long ws_frame_parse(const uint8_t *data, size_t len, size_t max_payload, ws_frame_t *f)
{
    if (len < 2)
        return 0;
    /* a server never masks (RFC 6455 5.1) and we negotiate no extension (RSV bits) */
    if ((data[0] & 0x70) != 0 || (data[1] & 0x80) != 0)
        return WS_ERR_FRAME;
    f->fin = data[0] >> 7;
    f->opcode = data[0] & 0x0F;
    int control = f->opcode >= 0x8;
    if ((f->opcode > WS_OP_BINARY && !control) || f->opcode > WS_OP_PONG)
        return WS_ERR_FRAME;
    size_t hdr = 2;
    uint64_t plen = data[1] & 0x7F;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)data[2] << 8 | data[3];
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | data[2 + i];
        hdr = 10;
    }
    if (control && (plen > 125 || !f->fin))
        return WS_ERR_FRAME;
    if (plen > max_payload)
        return WS_ERR_TOO_BIG;
    if (len - hdr < plen)
        return 0;
    f->payload = data + hdr;
    f->len = (size_t)plen;
    return (long)(hdr + plen);
}

const char *ws_strerror(long err)
{
    switch (err) {
    case WS_ERR_STATUS:
        return "the upgrade was not answered 101";
    case WS_ERR_ACCEPT:
        return "wrong or missing Sec-WebSocket-Accept";
    case WS_ERR_HEADERS:
        return "the upgrade answer's headers are too long";
    case WS_ERR_FRAME:
        return "a frame no server may send";
    case WS_ERR_TOO_BIG:
        return "a frame over the payload limit";
    default:
        return "unknown error";
    }
}
