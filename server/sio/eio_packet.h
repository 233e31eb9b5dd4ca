/*
 * Engine.IO v4 packet codec (private to the sio module). Pure functions: no
 * I/O, no allocation except into a caller's buf_t.
 */
#ifndef NEARCHAT_EIO_PACKET_H
#define NEARCHAT_EIO_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "../buf/buf.h"

typedef enum eio_type {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
} eio_type_t;

/* Errors, grouped by hundreds as in the rest of the project. */
enum {
    EIO_ERR_EMPTY = -101,    /* zero-length packet */
    EIO_ERR_TYPE = -102,     /* first character is not 0..6 */
    EIO_ERR_BASE64 = -103,   /* 'b' packet with invalid base64 */
    EIO_ERR_TOO_MANY = -104, /* more packets in one payload than allowed */
};

/**
 * One decoded packet. `data` points into the caller's input (or, for a binary
 * packet of a polling payload, into the same input after in-place base64
 * decoding) and is valid as long as that input is.
 */
typedef struct eio_packet {
    eio_type_t type;
    int binary; /* 1: a binary message (type is EIO_MESSAGE) */
    const uint8_t *data;
    size_t len;
} eio_packet_t;

/**
 * Parses one WebSocket text frame ("4hello", "2probe", "3"...).
 * Returns 0, EIO_ERR_EMPTY or EIO_ERR_TYPE.
 */
int eio_packet_parse_text(const char *s, size_t len, eio_packet_t *out);

/**
 * Decodes an HTTP long-polling payload: packets separated by 0x1e, a binary
 * packet written as 'b' followed by base64. Works in place: base64 is decoded
 * into `buf` itself. On success fills `out[0..*count)` (at most `max` entries)
 * and returns 0; on any invalid packet returns the negative error and reports
 * no packet at all (the caller closes the session).
 */
int eio_payload_decode(char *buf, size_t len, eio_packet_t *out, size_t max, size_t *count);

/**
 * Appends one packet to a polling payload being built in `out`, adding the
 * 0x1e separator when `out` is not empty. Binary messages become 'b'+base64.
 */
void eio_payload_append(buf_t *out, eio_type_t type, int binary, const void *data, size_t len);

/** Returns a static name for an error code (for logs). Never fails. */
const char *eio_strerror(int err);

#endif
