/*
 * libFuzzer target for the Socket.IO codec: parse, then re-encode the header
 * and the payload of a valid packet and check that parsing that gives back
 * the same packet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sio/sio_packet.h"

static void check_round_trip(const sio_packet_t *p)
{
    buf_t b = BUF_INIT;
    sio_packet_encode_header(&b, p->type, p->attachments, p->nsp, p->nsp_len, p->ack_id);
    if (p->payload) {
        char *json = json_dumps(p->payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (json == NULL)
            abort();
        buf_append_str(&b, json);
        free(json);
    }
    sio_packet_t q;
    if (sio_packet_parse(b.base, b.len, &q) != 0)
        abort();
    if (q.type != p->type || q.attachments != p->attachments || q.ack_id != p->ack_id || q.nsp_len != p->nsp_len ||
        memcmp(q.nsp, p->nsp, p->nsp_len) != 0 || (q.payload == NULL) != (p->payload == NULL) ||
        (p->payload && !json_equal(q.payload, p->payload)))
        abort();
    sio_packet_clear(&q);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past the packet. */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    if (size)
        memcpy(copy, data, size);
    sio_packet_t p;
    int err = sio_packet_parse(copy, size, &p);
    if (err == 0)
        check_round_trip(&p);
    else if (p.payload != NULL || sio_packet_strerror(err) == NULL)
        abort();
    sio_packet_clear(&p);
    free(copy);
    return 0;
}
