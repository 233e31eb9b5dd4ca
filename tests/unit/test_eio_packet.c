/* Unit tests for the Engine.IO v4 codec (server/sio/eio_packet.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sio/eio_packet.h"

#define STR_AND_LEN(s) (s), (sizeof(s) - 1)

static void test_parse_text_every_type(void **state)
{
    static const char *const frames[] = {"0{\"sid\":\"x\"}", "1", "2probe", "3probe", "4hello", "5", "6"};
    for (int t = 0; t <= 6; t++) {
        eio_packet_t p;
        assert_int_equal(eio_packet_parse_text(frames[t], strlen(frames[t]), &p), 0);
        assert_int_equal(p.type, t);
        assert_int_equal(p.binary, 0);
        assert_int_equal(p.len, strlen(frames[t]) - 1);
        assert_ptr_equal(p.data, (const uint8_t *)frames[t] + 1); /* points into the input */
    }
}

static void test_parse_text_data_may_hold_anything(void **state)
{
    eio_packet_t p;
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("4a\x1e\0b"), &p), 0);
    assert_int_equal(p.type, EIO_MESSAGE);
    assert_int_equal(p.len, 4);
    assert_memory_equal(p.data, "a\x1e\0b", 4);
}

static void test_parse_text_errors(void **state)
{
    eio_packet_t p;
    assert_int_equal(eio_packet_parse_text("", 0, &p), EIO_ERR_EMPTY);
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("7"), &p), EIO_ERR_TYPE);
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("9x"), &p), EIO_ERR_TYPE);
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("x"), &p), EIO_ERR_TYPE);
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("/4"), &p), EIO_ERR_TYPE);
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN(" 4"), &p), EIO_ERR_TYPE);
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("\x1e"), &p), EIO_ERR_TYPE);
    /* 'b' is only meaningful inside a polling payload. */
    assert_int_equal(eio_packet_parse_text(STR_AND_LEN("bAQID"), &p), EIO_ERR_TYPE);
}

/* Decodes a writable copy of `s`; the packets point into *copy (free it). */
static int decode_copy(const char *s, size_t len, eio_packet_t *out, size_t max, size_t *count, char **copy)
{
    *copy = malloc(len ? len : 1);
    memcpy(*copy, s, len);
    return eio_payload_decode(*copy, len, out, max, count);
}

static void test_payload_single_and_many(void **state)
{
    eio_packet_t p[8];
    size_t n = 99;
    char *c;
    assert_int_equal(decode_copy(STR_AND_LEN("4hello"), p, 8, &n, &c), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].type, EIO_MESSAGE);
    assert_memory_equal(p[0].data, "hello", 5);
    free(c);

    assert_int_equal(decode_copy(STR_AND_LEN("4hello\x1e"
                                             "2\x1e"
                                             "3probe\x1e"
                                             "1\x1e"
                                             "6\x1e"
                                             "5\x1e"
                                             "0{}"),
                                 p, 8, &n, &c),
                     0);
    assert_int_equal(n, 7);
    static const eio_type_t types[] = {EIO_MESSAGE, EIO_PING, EIO_PONG, EIO_CLOSE, EIO_NOOP, EIO_UPGRADE, EIO_OPEN};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p[i].type, types[i]);
        assert_int_equal(p[i].binary, 0);
    }
    assert_int_equal(p[1].len, 0);
    assert_int_equal(p[2].len, 5);
    assert_memory_equal(p[2].data, "probe", 5);
    assert_int_equal(p[6].len, 2);
    free(c);
}

static void test_payload_binary(void **state)
{
    eio_packet_t p[4];
    size_t n;
    char *c;
    assert_int_equal(decode_copy(STR_AND_LEN("bAQIDBA==\x1e"
                                             "4x\x1e"
                                             "b\x1e"
                                             "b/w=="),
                                 p, 4, &n, &c),
                     0);
    assert_int_equal(n, 4);
    assert_int_equal(p[0].type, EIO_MESSAGE);
    assert_int_equal(p[0].binary, 1);
    assert_int_equal(p[0].len, 4);
    assert_memory_equal(p[0].data, "\x01\x02\x03\x04", 4);
    assert_ptr_equal(p[0].data, (uint8_t *)c + 1); /* decoded in place */
    assert_int_equal(p[1].binary, 0);
    assert_memory_equal(p[1].data, "x", 1);
    assert_int_equal(p[2].binary, 1); /* "b" alone: an empty binary message */
    assert_int_equal(p[2].len, 0);
    assert_int_equal(p[3].len, 1);
    assert_int_equal(p[3].data[0], 0xff);
    free(c);
}

static void test_payload_errors(void **state)
{
    eio_packet_t p[4];
    size_t n;
    char *c;
    static const struct {
        const char *in;
        size_t len;
        int err;
    } cases[] = {
        {STR_AND_LEN(""), EIO_ERR_EMPTY},
        {STR_AND_LEN("\x1e"), EIO_ERR_EMPTY},
        {STR_AND_LEN("4a\x1e"), EIO_ERR_EMPTY}, /* trailing separator */
        {STR_AND_LEN("\x1e"
                     "4a"),
         EIO_ERR_EMPTY}, /* leading separator */
        {STR_AND_LEN("4a\x1e\x1e"
                     "4b"),
         EIO_ERR_EMPTY},
        {STR_AND_LEN("4a\x1e"
                     "7"),
         EIO_ERR_TYPE},
        {STR_AND_LEN("x"), EIO_ERR_TYPE},
        {STR_AND_LEN("bAQID"), 0},            /* sanity: valid */
        {STR_AND_LEN("bAQ"), EIO_ERR_BASE64}, /* truncated */
        {STR_AND_LEN("bA==="), EIO_ERR_BASE64},
        {STR_AND_LEN("4a\x1e"
                     "b!!!!"),
         EIO_ERR_BASE64},
        {STR_AND_LEN("bAQ-_"), EIO_ERR_BASE64}, /* base64url alphabet */
        {STR_AND_LEN("1\x1e"
                     "1\x1e"
                     "1\x1e"
                     "1\x1e"
                     "1"),
         EIO_ERR_TOO_MANY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = 99;
        int err = decode_copy(cases[i].in, cases[i].len, p, 4, &n, &c);
        assert_int_equal(err, cases[i].err);
        if (err)
            assert_int_equal(n, 0); /* no packet reported on failure */
        free(c);
    }
    /* Exactly `max` packets is fine. */
    assert_int_equal(decode_copy(STR_AND_LEN("1\x1e"
                                             "1\x1e"
                                             "1\x1e"
                                             "1"),
                                 p, 4, &n, &c),
                     0);
    assert_int_equal(n, 4);
    free(c);
}

static void test_payload_append_and_round_trip(void **state)
{
    buf_t b = BUF_INIT;
    eio_payload_append(&b, EIO_MESSAGE, 0, "hello", 5);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.base, "4hello", 6);
    eio_payload_append(&b, EIO_PING, 0, NULL, 0);
    eio_payload_append(&b, EIO_MESSAGE, 1, "\x01\x02\x03\x04", 4);
    eio_payload_append(&b, EIO_OPEN, 0, "{\"sid\":\"a\"}", 11);
    eio_payload_append(&b, EIO_MESSAGE, 1, "", 0);
    const char want[] = "4hello\x1e"
                        "2\x1e"
                        "bAQIDBA==\x1e"
                        "0{\"sid\":\"a\"}\x1e"
                        "b";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.base, want, b.len);

    eio_packet_t p[8];
    size_t n;
    assert_int_equal(eio_payload_decode(b.base, b.len, p, 8, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(p[0].type, EIO_MESSAGE);
    assert_memory_equal(p[0].data, "hello", 5);
    assert_int_equal(p[1].type, EIO_PING);
    assert_int_equal(p[1].len, 0);
    assert_true(p[2].binary);
    assert_int_equal(p[2].len, 4);
    assert_memory_equal(p[2].data, "\x01\x02\x03\x04", 4);
    assert_int_equal(p[3].type, EIO_OPEN);
    assert_memory_equal(p[3].data, "{\"sid\":\"a\"}", 11);
    assert_true(p[4].binary);
    assert_int_equal(p[4].len, 0);
    buf_free(&b);
}

static void test_binary_round_trip_all_bytes(void **state)
{
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    buf_t b = BUF_INIT;
    eio_payload_append(&b, EIO_MESSAGE, 1, data, sizeof(data));
    eio_payload_append(&b, EIO_MESSAGE, 1, data, 1);
    eio_packet_t p[2];
    size_t n;
    assert_int_equal(eio_payload_decode(b.base, b.len, p, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].len, sizeof(data));
    assert_memory_equal(p[0].data, data, sizeof(data));
    assert_int_equal(p[1].len, 1);
    assert_int_equal(p[1].data[0], data[0]);
    buf_free(&b);
}

static void test_strerror(void **state)
{
    assert_string_equal(eio_strerror(0), "ok");
    int codes[] = {EIO_ERR_EMPTY, EIO_ERR_TYPE, EIO_ERR_BASE64, EIO_ERR_TOO_MANY};
    for (size_t i = 0; i < 4; i++) {
        assert_non_null(eio_strerror(codes[i]));
        assert_string_not_equal(eio_strerror(codes[i]), "unknown error");
    }
    assert_string_equal(eio_strerror(-999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_text_every_type),
        cmocka_unit_test(test_parse_text_data_may_hold_anything),
        cmocka_unit_test(test_parse_text_errors),
        cmocka_unit_test(test_payload_single_and_many),
        cmocka_unit_test(test_payload_binary),
        cmocka_unit_test(test_payload_errors),
        cmocka_unit_test(test_payload_append_and_round_trip),
        cmocka_unit_test(test_binary_round_trip_all_bytes),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
