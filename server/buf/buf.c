/*
 * buf: growable byte buffer, abort-on-OOM allocation helpers and base64.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Out of memory is fatal by project policy (see buf.h): say so and stop. */
static _Noreturn void buf_oom(size_t n)
{
    fprintf(stderr, "nearchat: out of memory (allocating %zu bytes)\n", n);
    abort();
}

/** Like malloc, but aborts on OOM; malloc(0) still returns a usable pointer. */
void *buf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        buf_oom(n);
    return p;
}

/** Like calloc, but aborts on OOM or on overflow of n * size. */
void *buf_xcalloc(size_t n, size_t size)
{
    if (n == 0 || size == 0)
        n = size = 1;
    void *p = calloc(n, size);
    if (p == NULL)
        buf_oom(n * size);
    return p;
}

/** Like realloc, but aborts on OOM; never frees on n == 0. */
void *buf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        buf_oom(n);
    return q;
}

/** Like strndup (stops at the first NUL within n), but aborts on OOM. */
char *buf_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = buf_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/*
 * Always keeps one spare byte past `len` so appends can NUL-terminate: callers
 * may then hand `base` to string functions after any append (not after
 * buf_reset, which cannot write).
 */
void buf_reserve(buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        buf_oom(SIZE_MAX);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    /* Doubling keeps appends amortised O(1). */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->base = buf_xrealloc(b->base, cap);
    b->cap = cap;
}

void buf_append(buf_t *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->base + b->len, data, len);
    b->len += len;
    b->base[b->len] = '\0';
}

void buf_append_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_append_char(buf_t *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_append_u64(buf_t *b, uint64_t v)
{
    char tmp[20]; /* UINT64_MAX has 20 digits */
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(b, tmp + i, sizeof(tmp) - i);
}

void buf_append_json_string(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char named[] = "\"\\\n\r\t\b\f", as[] = "\"\\nrtbf"; /* escapes with a letter of their own */
    buf_reserve(b, len + 2);
    buf_append_char(b, '"');
    size_t plain = 0; /* start of the run of bytes that need no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        buf_append(b, s + plain, i - plain);
        plain = i + 1;
        const char *k = ch != 0 ? memchr(named, ch, sizeof(named) - 1) : NULL;
        char esc[6] = {'\\', k != NULL ? as[k - named] : 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        buf_append(b, esc, k != NULL ? 2 : 6);
    }
    buf_append(b, s + plain, len - plain);
    buf_append_char(b, '"');
}

void buf_copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void buf_free(buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void buf_append_base64(buf_t *out, const uint8_t *data, size_t len)
{
    size_t n = (len + 2) / 3 * 4;
    buf_reserve(out, n);
    char *p = out->base + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = b64_alphabet[v >> 18];
        *p++ = b64_alphabet[(v >> 12) & 63];
        *p++ = b64_alphabet[(v >> 6) & 63];
        *p++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        *p++ = b64_alphabet[v >> 18];
        *p++ = b64_alphabet[(v >> 12) & 63];
        *p++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    out->len += n;
    out->base[out->len] = '\0';
}

/* Value of one base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * In-place decoding is safe: quad k is read from in[4k..4k+3] before its
 * bytes go to out[3k..3k+2], and every later read is at or past in[4k+4].
 * Padding is only accepted as the last one or two characters. Unused low
 * bits of the last quad are ignored, as Node's decoder does.
 */
long buf_base64_decode(uint8_t *out, const char *in, size_t len)
{
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int pad = 0;
        if (last && in[i + 3] == '=')
            pad = in[i + 2] == '=' ? 2 : 1;
        int v0 = b64_value((unsigned char)in[i]);
        int v1 = b64_value((unsigned char)in[i + 1]);
        int v2 = pad >= 2 ? 0 : b64_value((unsigned char)in[i + 2]);
        int v3 = pad >= 1 ? 0 : b64_value((unsigned char)in[i + 3]);
        if (v0 < 0 || v1 < 0 || v2 < 0 || v3 < 0)
            return -1;
        uint32_t v = (uint32_t)v0 << 18 | (uint32_t)v1 << 12 | (uint32_t)v2 << 6 | (uint32_t)v3;
        out[o++] = (uint8_t)(v >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(v >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)v;
    }
    return (long)o;
}
