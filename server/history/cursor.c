/*
 * history cursors: opaque, signed keyset positions. The signature covers the
 * query's description too, so a cursor that was edited, or that another query
 * made, is refused (HIST_ERR_CURSOR) instead of silently paging wrong data.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../buf/buf.h"
#include "internal.h"

/* The longest cursor accepted: positions are a number and an id. */
#define CURSOR_MAX 1024

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_append(buf_t *out, const unsigned char *p, size_t len)
{
    size_t i;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char c[4] = {B64URL[v >> 18], B64URL[(v >> 12) & 63], B64URL[(v >> 6) & 63], B64URL[v & 63]};
        buf_append(out, c, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char c[2] = {B64URL[v >> 18], B64URL[(v >> 12) & 63]};
        buf_append(out, c, 2);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char c[3] = {B64URL[v >> 18], B64URL[(v >> 12) & 63], B64URL[(v >> 6) & 63]};
        buf_append(out, c, 3);
    }
}

static int b64url_value(char c)
{
    const char *p = c != '\0' ? strchr(B64URL, c) : NULL;
    return p != NULL ? (int)(p - B64URL) : -1;
}

/* Decodes unpadded base64url into `out` (room for len * 3 / 4 bytes); the length, or -1 when invalid. */
static long b64url_decode(unsigned char *out, const char *in, size_t len)
{
    if (len % 4 == 1)
        return -1;
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    /* the leftover bits must be zero, or two spellings would decode alike */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return n;
}

static void mac(const void *key, size_t keylen, const char *query, const char *payload, size_t plen,
                unsigned char out[32])
{
    buf_t msg = BUF_INIT;
    buf_append_str(&msg, query);
    buf_append_char(&msg, '\n');
    buf_append(&msg, payload, plen);
    unsigned int outlen = 32;
    if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg.base, msg.len, out, &outlen) == NULL)
        memset(out, 0, 32); /* cannot happen with SHA-256; an all-zero mac matches nothing we made */
    buf_free(&msg);
}

char *hist_cursor_make(const void *key, size_t keylen, const char *query, const json_t *position)
{
    char *json = json_dumps(position, JSON_COMPACT);
    if (json == NULL)
        abort(); /* out of memory: the project's policy */
    buf_t out = BUF_INIT;
    b64url_append(&out, (const unsigned char *)json, strlen(json));
    unsigned char m[32];
    mac(key, keylen, query, out.base, out.len, m);
    buf_append_char(&out, '.');
    b64url_append(&out, m, sizeof m);
    buf_append_char(&out, '\0');
    free(json);
    return out.base;
}

json_t *hist_cursor_read(const void *key, size_t keylen, const char *query, const char *cursor)
{
    json_t *position = NULL;
    unsigned char *payload = NULL;
    size_t len = strnlen(cursor, CURSOR_MAX + 1);
    const char *dot = memchr(cursor, '.', len);
    if (len > CURSOR_MAX || dot == NULL)
        goto Exit;
    size_t plen = (size_t)(dot - cursor);
    unsigned char want[32], got[32];
    mac(key, keylen, query, cursor, plen, want);
    if (len - plen - 1 != 43 || b64url_decode(got, dot + 1, 43) != 32 || CRYPTO_memcmp(want, got, 32) != 0)
        goto Exit;
    payload = buf_xmalloc(plen * 3 / 4 + 1);
    long n = b64url_decode(payload, cursor, plen);
    if (n < 0)
        goto Exit;
    position = json_loadb((const char *)payload, (size_t)n, 0, NULL);
Exit:
    free(payload);
    return position;
}
