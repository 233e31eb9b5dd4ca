/*
 * buf: a growable byte buffer.
 *
 * Out-of-memory policy (whole project): allocation failure is fatal. A chat
 * server that cannot allocate cannot keep its promises, so buf_* aborts with
 * a message instead of returning errors nobody can act on.
 */
#ifndef NEARCHAT_BUF_H
#define NEARCHAT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *base;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT                                                                                                       \
    {                                                                                                                  \
        NULL, 0, 0                                                                                                     \
    }

/** Makes room for at least `extra` more bytes. Never fails (aborts on OOM). */
void buf_reserve(buf_t *b, size_t extra);

/** Appends `len` bytes. Never fails. */
void buf_append(buf_t *b, const void *data, size_t len);

/** Appends a NUL-terminated string (without its NUL). Never fails. */
void buf_append_str(buf_t *b, const char *s);

/** Appends one byte. Never fails. */
void buf_append_char(buf_t *b, char c);

/** Appends the decimal form of `v`. Never fails. */
void buf_append_u64(buf_t *b, uint64_t v);

/**
 * Appends `s` (`len` bytes of valid UTF-8) as a JSON string, quotes included:
 * `"` and `\\` and control characters escaped, everything else as it is (as
 * jansson writes it). For hot paths that write JSON without building a tree.
 */
void buf_append_json_string(buf_t *b, const char *s, size_t len);

/** Copies the string `src` into `dst` of `size` bytes (> 0), cut to fit and NUL-terminated: snprintf's "%s" without
 * printf. */
void buf_copy_str(char *dst, size_t size, const char *src);

/** Forgets the content but keeps the memory. */
static inline void buf_reset(buf_t *b)
{
    b->len = 0;
}

/** Frees the memory; the buffer is then empty and reusable. */
void buf_free(buf_t *b);

/** Like malloc/calloc/realloc/strndup but abort on OOM. */
void *buf_xmalloc(size_t n);
void *buf_xcalloc(size_t n, size_t size);
void *buf_xrealloc(void *p, size_t n);
char *buf_xstrndup(const char *s, size_t n);

/** Base64 (standard alphabet, padded) of `len` bytes appended to `out`. */
void buf_append_base64(buf_t *out, const uint8_t *data, size_t len);

/**
 * Decodes standard padded base64 from `in` into `out` (which may equal `in`:
 * decoding in place is allowed). Returns the decoded length, or -1 when the
 * input is not valid base64.
 */
long buf_base64_decode(uint8_t *out, const char *in, size_t len);

#endif
