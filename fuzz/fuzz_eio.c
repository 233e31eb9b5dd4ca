/*
 * libFuzzer target for the Engine.IO codec: the input is tried as a polling
 * payload (decoded in place on a private copy, then re-encoded and decoded
 * again, which must give the same packets) and as a WebSocket text frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sio/eio_packet.h"

#define MAX_PACKETS 16

/* Re-encodes decoded packets and checks that decoding gives them back. */
static void check_round_trip(const eio_packet_t *pkts, size_t n)
{
    buf_t b = BUF_INIT;
    eio_packet_t again[MAX_PACKETS];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        eio_payload_append(&b, pkts[i].type, pkts[i].binary, pkts[i].data, pkts[i].len);
    /* A text packet holding 0x1e re-splits differently: nothing to compare. */
    for (size_t i = 0; i < n; i++)
        if (!pkts[i].binary && pkts[i].len && memchr(pkts[i].data, 0x1e, pkts[i].len))
            goto out;
    if (eio_payload_decode(b.base, b.len, again, MAX_PACKETS, &m) != 0 || m != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (again[i].type != pkts[i].type || again[i].binary != pkts[i].binary || again[i].len != pkts[i].len ||
            (pkts[i].len && memcmp(again[i].data, pkts[i].data, pkts[i].len) != 0))
            abort();
out:
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy lets ASan catch any read past the payload. */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    if (size)
        memcpy(copy, data, size);
    eio_packet_t pkts[MAX_PACKETS];
    size_t n = 0;
    int err = eio_payload_decode(copy, size, pkts, MAX_PACKETS, &n);
    if (err == 0)
        check_round_trip(pkts, n);
    else if (n != 0 || eio_strerror(err) == NULL)
        abort();
    free(copy);

    eio_packet_t p;
    if (eio_packet_parse_text((const char *)data, size, &p) == 0 && p.len != size - 1)
        abort();
    return 0;
}
