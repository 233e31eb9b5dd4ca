/*
 * libFuzzer target for the WebSocket frame reader, fed as a socket would
 * feed it: the input is cut into reads (a length byte, then that many bytes),
 * each appended to what is pending, and every complete frame is taken out
 * before the next read. The pending bytes are handed over in an exact-size
 * copy, so that ASan sees any read past them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sio/ws_frame.h"

static void check_event(const ws_reader_t *r, const uint8_t *p, size_t avail, const ws_event_t *ev)
{
    if (ev->consumed == 0 || ev->consumed > avail)
        abort();
    if (ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY) {
        if (ev->len > r->max_payload)
            abort();
        int in_input = ev->data >= p && ev->len <= (size_t)(p + avail - ev->data);
        int in_frag = ev->data == (const uint8_t *)r->frag.base && ev->len == r->frag.len;
        if (ev->len != 0 && !in_input && !in_frag)
            abort();
    } else if (ev->opcode >= 8 && ev->len > 125) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    ws_reader_t r;
    ws_reader_init(&r, ((size_t)data[0] << 8 | data[1]) + 1); /* 1 .. 65536 */
    data += 2, size -= 2;
    buf_t pending = BUF_INIT;
    int done = 0;
    while (size > 0 && !done) {
        size_t n = data[0];
        data++, size--;
        if (n > size)
            n = size;
        buf_append(&pending, data, n);
        data += n, size -= n;
        for (;;) {
            uint8_t *copy = malloc(pending.len ? pending.len : 1);
            if (copy == NULL)
                abort();
            if (pending.len)
                memcpy(copy, pending.base, pending.len);
            ws_event_t ev;
            int rc = ws_reader_next(&r, copy, pending.len, &ev);
            if (rc == 1) {
                check_event(&r, copy, pending.len, &ev);
                if (ev.opcode == WS_OP_CLOSE)
                    (void)ws_close_reply(ev.data, ev.len);
                /* unmasked in place in the copy; drop the frame from the stream */
                memmove(pending.base, pending.base + ev.consumed, pending.len - ev.consumed);
                pending.len -= ev.consumed;
            } else if (rc < 0) {
                if (rc != -1002 && rc != -1009)
                    abort();
                done = 1;
            }
            free(copy);
            if (rc != 1)
                break;
        }
    }
    buf_free(&pending);
    ws_reader_free(&r);
    return 0;
}
