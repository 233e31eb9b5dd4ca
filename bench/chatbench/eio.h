/*
 * eio: Engine.IO v4 packets over the WebSocket transport (one packet per
 * text frame) and the Socket.IO v5 packets inside Engine.IO messages, for a
 * client that knows three namespaces. A codec with no I/O and no allocation.
 */
#ifndef CHATBENCH_EIO_H
#define CHATBENCH_EIO_H

#include <stddef.h>
#include <stdint.h>

#include "../../server/buf/buf.h"

/* Engine.IO packet types, as their wire character. */
enum { EIO_OPEN = '0', EIO_CLOSE = '1', EIO_PING = '2', EIO_PONG = '3', EIO_MESSAGE = '4', EIO_NOOP = '6' };

/* Socket.IO packet types. */
enum { SIO_CONNECT = 0, SIO_DISCONNECT = 1, SIO_EVENT = 2, SIO_ACK = 3, SIO_CONNECT_ERROR = 4 };

typedef enum { EIO_NSP_ROOT, EIO_NSP_MATCH, EIO_NSP_CHAT, EIO_NSP_OTHER } eio_nsp_t;

/** One received packet; `data` points into the frame it was parsed from. */
typedef struct eio_pkt {
    int eio;                /* EIO_* */
    int sio;                /* SIO_* when eio is EIO_MESSAGE, else -1 */
    eio_nsp_t nsp;          /* EIO_NSP_ROOT when the packet names none */
    int64_t ack;            /* the ack id, -1 when absent */
    const char *data, *end; /* the JSON payload, empty when absent */
} eio_pkt_t;

/**
 * Parses one Engine.IO packet (a whole text frame). Returns 0, or -1 when
 * it is not a packet this client understands (binary attachments included:
 * the chat contract sends none).
 */
int eio_parse(const char *s, size_t len, eio_pkt_t *p);

/**
 * Appends the header of a Socket.IO packet in an Engine.IO message to `out`:
 * `4`, the type, `/nsp,` unless the namespace is `/`, and the ack id when
 * `ack` >= 0. The caller appends the JSON payload. Never fails.
 */
void eio_header(buf_t *out, int sio_type, eio_nsp_t nsp, int64_t ack);

/** The name of a namespace, as written on the wire. */
const char *eio_nsp_name(eio_nsp_t nsp);

#endif
