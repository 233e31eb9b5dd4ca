/*
 * ws_frame: the reading side of RFC 6455 framing as a pure function of the
 * bytes received so far, with no socket in it, so that it can be unit-tested
 * and fuzzed with a stream cut at any point. It faces anyone who can open a
 * TCP connection: every length is checked without arithmetic that can wrap.
 */
#ifndef NEARCHAT_SIO_WS_FRAME_H
#define NEARCHAT_SIO_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "../buf/buf.h"

enum {
    WS_OP_CONT = 0,
    WS_OP_TEXT = 1,
    WS_OP_BINARY = 2,
    WS_OP_CLOSE = 8,
    WS_OP_PING = 9,
    WS_OP_PONG = 10,
};

/* A fragmented message being assembled, and the limit on any message. */
typedef struct ws_reader {
    size_t max_payload;
    buf_t frag;
    int frag_opcode; /* WS_OP_TEXT or WS_OP_BINARY while a message is open, else 0 */
    int frag_done;   /* the last event handed out `frag`: empty it on the next call */
} ws_reader_t;

/* What one complete frame meant. */
typedef struct ws_event {
    int opcode;    /* TEXT/BINARY (a whole message), CLOSE, PING, PONG, or CONT: a fragment stored, nothing to do */
    uint8_t *data; /* unmasked payload: in the input, or in the reader's `frag` */
    size_t len;
    size_t consumed; /* bytes of input this frame used; consume them after handling the event */
} ws_event_t;

void ws_reader_init(ws_reader_t *r, size_t max_payload);
void ws_reader_free(ws_reader_t *r);

/**
 * Reads the frame at the start of `p` (`avail` bytes, unmasked in place once
 * complete). Returns 1 with `ev` filled, 0 when more bytes are needed (nothing
 * changed), or minus the close code to answer with: 1002 for a protocol
 * violation, 1009 for a message past max_payload. A frame's bytes must not be
 * passed twice: consume `ev->consumed` before the next call.
 */
int ws_reader_next(ws_reader_t *r, uint8_t *p, size_t avail, ws_event_t *ev);

/** Whether `code` may appear in a Close frame (RFC 6455 7.4.1 and 7.4.2, as the `ws` package checks it). */
int ws_close_code_valid(int code);

/**
 * The code to answer a peer's Close frame payload with: its own code when
 * valid, 1000 when it carried none, 1002 for a 1-byte payload or a code that
 * may not be sent, 1007 when the reason is not UTF-8.
 */
int ws_close_reply(const uint8_t *payload, size_t len);

/** Whether `len` bytes are valid UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
int ws_utf8_valid(const uint8_t *s, size_t len);

#endif
