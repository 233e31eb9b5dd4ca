/*
 * Socket.IO v5 packet codec, decoding as socket.io-parser v4 does:
 *   <type>[<attachments>-][/<nsp>,][<ack id>][<JSON payload>]
 */
#include "sio_packet.h"

#include <string.h>

/* Largest integer a JavaScript client can hold exactly (2^53 - 1). */
#define SIO_ACK_ID_MAX 9007199254740991LL

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Event names the reference server keeps for itself; a client may not emit them. */
static int is_reserved_event(const char *name)
{
    static const char *const reserved[] = {"connect",       "connect_error", "disconnect",
                                           "disconnecting", "newListener",   "removeListener"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(name, reserved[i]) == 0)
            return 1;
    return 0;
}

/* Whether `payload` (NULL: absent) is allowed for `type`, per sio_packet.h. */
static int payload_valid(sio_ptype_t type, const json_t *payload)
{
    switch (type) {
    case SIO_CONNECT:
        return payload == NULL || json_is_object(payload);
    case SIO_DISCONNECT:
        return payload == NULL;
    case SIO_CONNECT_ERROR:
        return json_is_object(payload) || json_is_string(payload);
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        if (!json_is_array(payload) || json_array_size(payload) == 0)
            return 0;
        const json_t *name = json_array_get(payload, 0);
        if (json_is_number(name))
            return 1;
        /* strlen-based compare: a name with an embedded NUL is not reserved
         * unless its visible prefix is, which is harmless either way. */
        return json_is_string(name) && !is_reserved_event(json_string_value(name));
    }
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return json_is_array(payload);
    }
    return 0;
}

int sio_packet_parse(const char *s, size_t len, sio_packet_t *out)
{
    size_t i = 0;
    int err = 0;
    memset(out, 0, sizeof(*out));
    out->nsp = "/";
    out->nsp_len = 1;
    out->ack_id = -1;
    if (len == 0)
        return SIO_ERR_EMPTY;
    if (s[0] < '0' || s[0] > '6')
        return SIO_ERR_TYPE;
    out->type = (sio_ptype_t)(s[0] - '0');
    i = 1;

    if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK) {
        size_t start = i;
        unsigned n = 0;
        for (; i < len && is_digit(s[i]); i++) {
            n = n * 10 + (unsigned)(s[i] - '0');
            if (n > SIO_ATTACHMENTS_MAX)
                return SIO_ERR_ATTACHMENTS; /* also keeps n from overflowing */
        }
        if (i == start || i == len || s[i] != '-')
            return SIO_ERR_ATTACHMENTS;
        out->attachments = n;
        i++;
    }

    if (i < len && s[i] == '/') {
        /* The namespace runs to ',' or, without one, to the end of the packet. */
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - s) : len;
        if (end - i > SIO_NSP_MAX)
            return SIO_ERR_NSP;
        out->nsp = s + i;
        out->nsp_len = end - i;
        i = comma ? end + 1 : end;
    }

    if (i < len && is_digit(s[i])) {
        int64_t id = 0;
        for (; i < len && is_digit(s[i]); i++) {
            id = id * 10 + (s[i] - '0');
            if (id > SIO_ACK_ID_MAX)
                return SIO_ERR_ACK_ID; /* checked per digit: id cannot overflow */
        }
        out->ack_id = id;
    }

    if (i < len) {
        json_error_t jerr;
        out->payload = json_loadb(s + i, len - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (out->payload == NULL) {
            err = SIO_ERR_JSON;
            goto fail;
        }
    }
    if (!payload_valid(out->type, out->payload)) {
        err = SIO_ERR_PAYLOAD;
        goto fail;
    }
    return 0;
fail:
    sio_packet_clear(out);
    return err;
}

void sio_packet_clear(sio_packet_t *p)
{
    json_decref(p->payload);
    p->payload = NULL;
}

void sio_packet_encode_header(buf_t *out, sio_ptype_t type, unsigned attachments, const char *nsp, size_t nsp_len,
                              int64_t ack_id)
{
    buf_append_char(out, (char)('0' + type));
    if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK) {
        buf_append_u64(out, attachments);
        buf_append_char(out, '-');
    }
    /* The comma is always written: a decoder cannot tell where a namespace
     * ends otherwise, even when nothing follows. */
    if (nsp != NULL && nsp_len > 0 && !(nsp_len == 1 && nsp[0] == '/')) {
        buf_append(out, nsp, nsp_len);
        buf_append_char(out, ',');
    }
    if (ack_id >= 0)
        buf_append_u64(out, (uint64_t)ack_id);
}

const char *sio_packet_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case SIO_ERR_EMPTY:
        return "empty packet";
    case SIO_ERR_TYPE:
        return "unknown packet type";
    case SIO_ERR_ATTACHMENTS:
        return "invalid attachment count";
    case SIO_ERR_NSP:
        return "invalid namespace";
    case SIO_ERR_ACK_ID:
        return "invalid ack id";
    case SIO_ERR_JSON:
        return "payload is not valid JSON";
    case SIO_ERR_PAYLOAD:
        return "payload not allowed for packet type";
    case SIO_ERR_UNEXPECTED:
        return "attachment with no binary packet waiting";
    case SIO_ERR_TOO_BIG:
        return "attachments over their budget";
    default:
        return "unknown error";
    }
}

/* ---- binary packets waiting for their attachments ---- */

void sio_binary_init(sio_binary_t *b, size_t max_bytes)
{
    memset(b, 0, sizeof(*b));
    b->max_bytes = max_bytes;
}

void sio_binary_start(sio_binary_t *b, sio_packet_t *p)
{
    b->packet = *p;
    p->payload = NULL;
    /* parse bounds nsp_len by SIO_NSP_MAX; the copy is what outlives the input */
    memcpy(b->nsp, p->nsp, p->nsp_len);
    b->packet.nsp = b->nsp;
    b->nbins = 0;
    b->bytes = 0;
    b->waiting = 1;
}

int sio_binary_add(sio_binary_t *b, const uint8_t *data, size_t len)
{
    if (!b->waiting || b->nbins >= b->packet.attachments || b->nbins >= SIO_ATTACHMENTS_MAX)
        return SIO_ERR_UNEXPECTED;
    /* written so that it cannot wrap: bytes <= max_bytes always holds */
    if (len > b->max_bytes - b->bytes) {
        sio_binary_clear(b);
        return SIO_ERR_TOO_BIG;
    }
    b->bins[b->nbins] = (buf_t)BUF_INIT;
    buf_append(&b->bins[b->nbins], data, len);
    b->bytes += len;
    return ++b->nbins == b->packet.attachments ? 1 : 0;
}

void sio_binary_take(sio_binary_t *b, sio_binary_t *out)
{
    *out = *b;
    out->packet.nsp = out->nsp;
    size_t max = b->max_bytes;
    sio_binary_init(b, max);
}

void sio_binary_clear(sio_binary_t *b)
{
    for (size_t i = 0; i < b->nbins; i++)
        buf_free(&b->bins[i]);
    sio_packet_clear(&b->packet);
    b->nbins = 0;
    b->bytes = 0;
    b->waiting = 0;
}
