/* Unit tests for the WebSocket frame reader (server/sio/ws_frame.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sio/ws_frame.h"

/* Writes one masked client frame; returns its size. */
static size_t put_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + h, mask, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = p[i] ^ mask[i & 3];
    return h + len;
}

static void test_whole_text_frame_in_place(void **state)
{
    uint8_t in[64];
    size_t n = put_frame(in, 1, WS_OP_TEXT, "4hello", 6);
    ws_reader_t r;
    ws_reader_init(&r, 1024);
    ws_event_t ev;
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(ws_reader_next(&r, in, cut, &ev), 0); /* every prefix: wait */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    assert_int_equal(ev.opcode, WS_OP_TEXT);
    assert_int_equal(ev.len, 6);
    assert_int_equal(ev.consumed, n);
    assert_memory_equal(ev.data, "4hello", 6);
    assert_ptr_equal(ev.data, in + 6);
    ws_reader_free(&r);
}

static void test_fragments_are_joined(void **state)
{
    uint8_t in[256];
    size_t n = put_frame(in, 0, WS_OP_BINARY, "ab", 2);
    n += put_frame(in + n, 1, WS_OP_PING, "p", 1); /* control frames may interleave */
    n += put_frame(in + n, 0, WS_OP_CONT, "cd", 2);
    n += put_frame(in + n, 1, WS_OP_CONT, "e", 1);
    ws_reader_t r;
    ws_reader_init(&r, 1024);
    ws_event_t ev;
    size_t off = 0;
    int expect[] = {WS_OP_CONT, WS_OP_PING, WS_OP_CONT, WS_OP_BINARY};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ws_reader_next(&r, in + off, n - off, &ev), 1);
        assert_int_equal(ev.opcode, expect[i]);
        off += ev.consumed;
    }
    assert_int_equal(off, n);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "abcde", 5);
    /* the next message starts empty */
    n = put_frame(in, 1, WS_OP_TEXT, "x", 1);
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    assert_int_equal(ev.len, 1);
    ws_reader_free(&r);
}

/* The attack of issue 13 A1: a 20-byte first fragment, then a continuation declaring nearly 2^64 bytes. */
static void test_huge_continuation_is_refused_without_wrapping(void **state)
{
    uint8_t in[64];
    uint8_t twenty[20] = {0};
    size_t n = put_frame(in, 0, WS_OP_TEXT, twenty, 20);
    ws_reader_t r;
    ws_reader_init(&r, 1 << 20);
    ws_event_t ev;
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    uint8_t cont[14] = {0x80, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4};
    assert_int_equal(ws_reader_next(&r, cont, sizeof(cont), &ev), -1009);
    /* with the top bit set the length is illegal outright */
    cont[2] = 0xff;
    assert_int_equal(ws_reader_next(&r, cont, sizeof(cont), &ev), -1002);
    /* 2^64 - 20 - hlen: header + length would wrap to a small number */
    uint8_t wrap[14] = {0x81, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 1, 2, 3, 4};
    ws_reader_t big;
    ws_reader_init(&big, SIZE_MAX);
    assert_int_equal(ws_reader_next(&big, wrap, sizeof(wrap), &ev), 0); /* waits, never reads past */
    ws_reader_free(&big);
    ws_reader_free(&r);
}

static void test_message_limit_counts_all_fragments(void **state)
{
    uint8_t in[256];
    uint8_t bytes[60] = {0};
    ws_reader_t r;
    ws_reader_init(&r, 100);
    ws_event_t ev;
    size_t n = put_frame(in, 0, WS_OP_TEXT, bytes, 60);
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    n = put_frame(in, 1, WS_OP_CONT, bytes, 40); /* exactly 100: allowed */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    assert_int_equal(ev.len, 100);
    n = put_frame(in, 0, WS_OP_TEXT, bytes, 60);
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    n = put_frame(in, 1, WS_OP_CONT, bytes, 41);
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1009);
    ws_reader_free(&r);
}

static void test_protocol_violations(void **state)
{
    ws_reader_t r;
    ws_reader_init(&r, 1024);
    ws_event_t ev;
    uint8_t in[256];
    uint8_t unmasked[] = {0x81, 0x01, 'x'};
    assert_int_equal(ws_reader_next(&r, unmasked, sizeof(unmasked), &ev), -1002);
    uint8_t rsv[] = {0xc1, 0x80, 0, 0, 0, 0};
    assert_int_equal(ws_reader_next(&r, rsv, sizeof(rsv), &ev), -1002);
    size_t n = put_frame(in, 1, WS_OP_CONT, "x", 1); /* nothing to continue */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1002);
    n = put_frame(in, 0, WS_OP_PING, "x", 1); /* fragmented control */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1002);
    uint8_t big[130] = {0};
    n = put_frame(in, 1, WS_OP_PING, big, 126); /* control past 125 */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1002);
    n = put_frame(in, 1, 3, "x", 1); /* reserved opcode */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1002);
    n = put_frame(in, 1, 11, "x", 1);
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1002);
    n = put_frame(in, 0, WS_OP_TEXT, "a", 1);
    assert_int_equal(ws_reader_next(&r, in, n, &ev), 1);
    n = put_frame(in, 1, WS_OP_TEXT, "b", 1); /* a new message inside an open one */
    assert_int_equal(ws_reader_next(&r, in, n, &ev), -1002);
    ws_reader_free(&r);
}

static void test_close_codes(void **state)
{
    static const int invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        assert_false(ws_close_code_valid(invalid[i]));
        uint8_t p[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
        assert_int_equal(ws_close_reply(p, 2), 1002);
    }
    static const int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        assert_true(ws_close_code_valid(valid[i]));
        uint8_t p[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
        assert_int_equal(ws_close_reply(p, 2), valid[i]);
    }
    assert_int_equal(ws_close_reply(NULL, 0), 1000);
    uint8_t one[1] = {3};
    assert_int_equal(ws_close_reply(one, 1), 1002);
    uint8_t reason[] = {0x03, 0xe8, 'o', 'k', 0xc3, 0xa9};
    assert_int_equal(ws_close_reply(reason, sizeof(reason)), 1000);
    uint8_t bad[] = {0x03, 0xe8, 0xc0, 0xaf};
    assert_int_equal(ws_close_reply(bad, sizeof(bad)), 1007);
}

static void test_utf8(void **state)
{
    assert_true(ws_utf8_valid((const uint8_t *)"", 0));
    assert_true(ws_utf8_valid((const uint8_t *)"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    assert_false(ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* a surrogate */
    assert_false(ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(ws_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    assert_false(ws_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* cut short */
    assert_false(ws_utf8_valid((const uint8_t *)"\xff", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_text_frame_in_place),
        cmocka_unit_test(test_fragments_are_joined),
        cmocka_unit_test(test_huge_continuation_is_refused_without_wrapping),
        cmocka_unit_test(test_message_limit_counts_all_fragments),
        cmocka_unit_test(test_protocol_violations),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
