/*
 * Engine.IO v4 packet codec, following engine.io-parser v5: a packet is one
 * type digit '0'..'6' then its data; a polling payload joins packets with the
 * record separator 0x1e and writes binary messages as 'b' + base64.
 */
#include "eio_packet.h"

#include <string.h>

#define EIO_SEPARATOR '\x1e'

int eio_packet_parse_text(const char *s, size_t len, eio_packet_t *out)
{
    if (len == 0)
        return EIO_ERR_EMPTY;
    if (s[0] < '0' || s[0] > '6')
        return EIO_ERR_TYPE;
    out->type = (eio_type_t)(s[0] - '0');
    out->binary = 0;
    out->data = (const uint8_t *)s + 1;
    out->len = len - 1;
    return 0;
}

/* Decodes one part of a polling payload (no separator inside), in place. */
static int decode_part(char *s, size_t len, eio_packet_t *out)
{
    if (len == 0)
        return EIO_ERR_EMPTY; /* the reference parser rejects "" too */
    if (s[0] != 'b')
        return eio_packet_parse_text(s, len, out);
    long n = buf_base64_decode((uint8_t *)s + 1, s + 1, len - 1);
    if (n < 0)
        return EIO_ERR_BASE64;
    out->type = EIO_MESSAGE;
    out->binary = 1;
    out->data = (const uint8_t *)s + 1;
    out->len = (size_t)n;
    return 0;
}

int eio_payload_decode(char *buf, size_t len, eio_packet_t *out, size_t max, size_t *count)
{
    size_t n = 0;
    int err = 0;
    size_t pos = 0;
    *count = 0;
    /* An empty body is one empty part, an error like any empty part. */
    if (len == 0)
        return EIO_ERR_EMPTY;
    for (;;) {
        char *start = buf + pos;
        char *sep = memchr(start, EIO_SEPARATOR, len - pos);
        size_t plen = sep ? (size_t)(sep - start) : len - pos;
        if (n == max) {
            err = EIO_ERR_TOO_MANY;
            goto fail;
        }
        /* The separator was located first: decoding only shrinks the part. */
        err = decode_part(start, plen, &out[n]);
        if (err)
            goto fail;
        n++;
        if (!sep)
            break;
        pos += plen + 1;
    }
    *count = n;
    return 0;
fail:
    *count = 0;
    return err;
}

void eio_payload_append(buf_t *out, eio_type_t type, int binary, const void *data, size_t len)
{
    if (out->len > 0)
        buf_append_char(out, EIO_SEPARATOR);
    if (binary) {
        buf_append_char(out, 'b');
        buf_append_base64(out, data, len);
    } else {
        buf_append_char(out, (char)('0' + type));
        buf_append(out, data, len);
    }
}

const char *eio_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case EIO_ERR_EMPTY:
        return "empty packet";
    case EIO_ERR_TYPE:
        return "unknown packet type";
    case EIO_ERR_BASE64:
        return "invalid base64 in binary packet";
    case EIO_ERR_TOO_MANY:
        return "too many packets in payload";
    default:
        return "unknown error";
    }
}
