/*
 * Socket.IO v5 packet codec (private to the sio module). Decoding builds a
 * jansson value for the payload, since every handler needs it parsed anyway.
 */
#ifndef NEARCHAT_SIO_PACKET_H
#define NEARCHAT_SIO_PACKET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../buf/buf.h"

typedef enum sio_ptype {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
} sio_ptype_t;

enum {
    SIO_ERR_EMPTY = -201,       /* nothing to parse */
    SIO_ERR_TYPE = -202,        /* unknown packet type */
    SIO_ERR_ATTACHMENTS = -203, /* binary type without a valid "N-" count */
    SIO_ERR_NSP = -204,         /* namespace malformed (no ',' before payload, too long) */
    SIO_ERR_ACK_ID = -205,      /* ack id malformed or out of range */
    SIO_ERR_JSON = -206,        /* payload is not valid JSON */
    SIO_ERR_PAYLOAD = -207,     /* JSON valid but not allowed for this type */
    SIO_ERR_UNEXPECTED = -208,  /* an attachment with no binary packet waiting */
    SIO_ERR_TOO_BIG = -209,     /* the attachments of one packet exceed their budget */
};

/** Longest namespace name accepted, in bytes, including the leading '/'. */
#define SIO_NSP_MAX 128
/** Largest attachment count accepted in one binary packet. */
#define SIO_ATTACHMENTS_MAX 64

typedef struct sio_packet {
    sio_ptype_t type;
    /* Namespace: points into the input, or to the static "/" when absent. */
    const char *nsp;
    size_t nsp_len;
    int64_t ack_id; /* -1 when the packet carries none; 0..2^53-1 otherwise */
    unsigned attachments;
    /* Parsed payload, owned by the packet (NULL when there was none). Rules,
     * as the reference parser: CONNECT: object or none; DISCONNECT: none;
     * CONNECT_ERROR: object or string; (BINARY_)EVENT: non-empty array whose
     * first element is a string not among the reserved event names (connect,
     * connect_error, disconnect, disconnecting, newListener, removeListener)
     * or a number; (BINARY_)ACK: array. */
    json_t *payload;
} sio_packet_t;

/**
 * Parses a Socket.IO packet carried in one Engine.IO message (text).
 * Returns 0 and fills `out` (call sio_packet_clear after), or a negative
 * SIO_ERR_* with `out->payload` NULL.
 */
int sio_packet_parse(const char *s, size_t len, sio_packet_t *out);

/** Releases what sio_packet_parse allocated. Safe on a zeroed packet. */
void sio_packet_clear(sio_packet_t *p);

/**
 * Appends the encoded packet header to `out`:
 * type, "N-" for binary types, "nsp," unless nsp is "/", then the ack id
 * when >= 0. The caller appends the JSON payload (if any) right after.
 */
void sio_packet_encode_header(buf_t *out, sio_ptype_t type, unsigned attachments, const char *nsp, size_t nsp_len,
                              int64_t ack_id);

/** Returns a static name for an error code (for logs). Never fails. */
const char *sio_packet_strerror(int err);

/*
 * A binary packet waiting for its attachments. What it keeps it owns: the
 * input that carried the header (a WebSocket read buffer, a polling body) is
 * gone before the attachments come. Memory is bounded by SIO_ATTACHMENTS_MAX
 * buffers and `max_bytes` of attachment data in all.
 */
typedef struct sio_binary {
    int waiting;         /* a packet is waiting for attachments */
    sio_packet_t packet; /* nsp points to `nsp`, payload owned */
    char nsp[SIO_NSP_MAX];
    size_t nbins;     /* attachments received */
    size_t bytes;     /* their total length */
    size_t max_bytes; /* the budget of one packet's attachments */
    buf_t bins[SIO_ATTACHMENTS_MAX];
} sio_binary_t;

/** Readies `b` for packets whose attachments total at most `max_bytes`. Never fails. */
void sio_binary_init(sio_binary_t *b, size_t max_bytes);

/**
 * Starts waiting for the attachments of `p`, a parsed BINARY_EVENT or
 * BINARY_ACK with attachments > 0: takes ownership of its payload and copies
 * its namespace, so `p`'s input may be freed at once. `b` must not be
 * waiting already. Never fails.
 */
void sio_binary_start(sio_binary_t *b, sio_packet_t *p);

/**
 * Adds one attachment (copied). Returns 1 when it was the last one (take the
 * packet with sio_binary_take), 0 when more are due, SIO_ERR_UNEXPECTED when
 * nothing was waiting, SIO_ERR_TOO_BIG past the byte budget (then the
 * waiting packet is dropped; the caller closes the connection).
 */
int sio_binary_add(sio_binary_t *b, const uint8_t *data, size_t len);

/**
 * Moves the complete packet and its attachments out of `b` into `out`
 * (which then owns them: sio_binary_clear(out) frees them), leaving `b`
 * ready for the next packet. So a handler may free `b`'s owner meanwhile.
 */
void sio_binary_take(sio_binary_t *b, sio_binary_t *out);

/** Frees what `b` holds; it stays usable. Safe on an idle `b`. */
void sio_binary_clear(sio_binary_t *b);

#endif
