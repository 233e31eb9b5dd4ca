/*
 * ws: the client side of RFC 6455, as a codec with no I/O (wslay's split):
 * the upgrade request and the check of its answer, masked client frames,
 * and the parsing of the server's unmasked frames in place.
 */
#ifndef CHATBENCH_WS_H
#define CHATBENCH_WS_H

#include <stddef.h>
#include <stdint.h>

#include "../../server/buf/buf.h"

/* Length of a Sec-WebSocket-Accept value: base64 of a 20-byte SHA-1. */
#define WS_ACCEPT_LEN 28

enum { WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2, WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA };

/* Error codes, grouped by what went wrong; ws_strerror names them. */
enum {
    WS_ERR_STATUS = -100,  /* the answer to the upgrade is not 101 */
    WS_ERR_ACCEPT = -101,  /* Sec-WebSocket-Accept missing or wrong */
    WS_ERR_HEADERS = -102, /* the answer's headers do not end within the limit */
    WS_ERR_FRAME = -200,   /* a frame no server may send (masked, reserved bits, bad opcode) */
    WS_ERR_TOO_BIG = -201, /* a frame over the caller's payload limit */
};

/** One frame as parsed from the input: `payload` points into that input. */
typedef struct ws_frame {
    int fin;
    int opcode;
    const uint8_t *payload;
    size_t len;
} ws_frame_t;

/**
 * Appends the upgrade request for `path` on `hostport` (the Host header) to
 * `out`, with `nonce` as the key, and writes the Accept value the server must
 * answer into `accept` (NUL-terminated). Never fails.
 */
void ws_handshake_request(buf_t *out, const char *hostport, const char *path, const uint8_t nonce[16],
                          char accept[WS_ACCEPT_LEN + 1]);

/**
 * Checks the server's answer at the start of `data`. Returns the length of
 * its headers (the frames follow) when it is a 101 with the right Accept,
 * 0 when the headers are not complete yet, or WS_ERR_STATUS, WS_ERR_ACCEPT or
 * WS_ERR_HEADERS. On WS_ERR_STATUS, `*status` holds the HTTP status (0 when
 * unreadable).
 */
long ws_handshake_response(const char *data, size_t len, const char *accept, int *status);

/**
 * Appends one final client frame (FIN set) with `opcode` to `out`, masked
 * with `mask` as RFC 6455 requires of clients. Never fails.
 */
void ws_frame_append(buf_t *out, int opcode, const void *payload, size_t len, uint32_t mask);

/**
 * Parses the frame at the start of `data`. Returns its total length with
 * `*f` filled, 0 when it is not complete yet, or WS_ERR_FRAME or
 * WS_ERR_TOO_BIG (payload over `max_payload`).
 */
long ws_frame_parse(const uint8_t *data, size_t len, size_t max_payload, ws_frame_t *f);

/** Text for a WS_ERR_* code. Never fails. */
const char *ws_strerror(long err);

#endif
