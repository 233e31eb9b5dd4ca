/*
 * libFuzzer target for binary-attachment reassembly (sio_binary_*): the input
 * is a sequence of messages, each a length byte and that many bytes, the
 * first byte of each saying text ('t') or binary. A text message is parsed
 * as a Socket.IO packet; a binary packet with attachments starts waiting,
 * and its input is freed at once, as a WebSocket read buffer would be, so
 * that ASan sees any pointer kept into it. Attachments are added until the
 * packet completes; its namespace is then read back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sio/sio_packet.h"

static void check_complete(sio_binary_t *b, size_t budget)
{
    sio_binary_t done;
    sio_binary_take(b, &done);
    if (done.nbins != done.packet.attachments || done.bytes > budget || b->waiting)
        abort();
    size_t sum = 0;
    for (size_t i = 0; i < done.nbins; i++)
        sum += done.bins[i].len;
    if (sum != done.bytes)
        abort();
    /* the namespace must be the packet's own copy, still readable */
    volatile char c = 0;
    for (size_t i = 0; i < done.packet.nsp_len; i++)
        c ^= done.packet.nsp[i];
    (void)c;
    sio_binary_clear(&done);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t budget = (size_t)data[0] * 16; /* small, so the budget is reached */
    data++, size--;
    sio_binary_t b;
    sio_binary_init(&b, budget);
    while (size > 0) {
        size_t n = data[0];
        data++, size--;
        if (n > size)
            n = size;
        if (n == 0)
            continue;
        int text = data[0] == 't';
        /* an exact-size copy, freed right after use */
        uint8_t *msg = malloc(n - 1 ? n - 1 : 1);
        if (msg == NULL)
            abort();
        memcpy(msg, data + 1, n - 1);
        data += n, size -= n;
        if (text) {
            sio_packet_t p;
            if (b.waiting) {
                free(msg);
                sio_binary_clear(&b); /* the server closes the connection here */
                continue;
            }
            if (sio_packet_parse((const char *)msg, n - 1, &p) == 0) {
                if ((p.type == SIO_BINARY_EVENT || p.type == SIO_BINARY_ACK) && p.attachments > 0)
                    sio_binary_start(&b, &p);
                sio_packet_clear(&p);
            }
            free(msg);
            continue;
        }
        int rc = sio_binary_add(&b, msg, n - 1);
        free(msg);
        if (rc == 1)
            check_complete(&b, budget);
        else if (rc == SIO_ERR_TOO_BIG && b.waiting)
            abort(); /* past the budget, nothing stays waiting */
        else if (rc != 0 && rc != 1 && rc != SIO_ERR_TOO_BIG && rc != SIO_ERR_UNEXPECTED)
            abort();
    }
    sio_binary_clear(&b);
    return 0;
}
