/* Unit tests for the Socket.IO v5 codec (server/sio/sio_packet.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sio/sio_packet.h"

/* Parses a NUL-terminated string; asserts the result. Caller clears `p`. */
static void parse_ok(const char *s, sio_packet_t *p)
{
    int err = sio_packet_parse(s, strlen(s), p);
    if (err != 0)
        fail_msg("\"%s\": %s", s, sio_packet_strerror(err));
}

static void parse_err(const char *s, int want)
{
    sio_packet_t p;
    int err = sio_packet_parse(s, strlen(s), &p);
    if (err != want)
        fail_msg("\"%s\": got %d (%s), want %d (%s)", s, err, sio_packet_strerror(err), want,
                 sio_packet_strerror(want));
    assert_null(p.payload); /* nothing to free after a failure */
}

static void assert_nsp(const sio_packet_t *p, const char *nsp)
{
    assert_int_equal(p->nsp_len, strlen(nsp));
    assert_memory_equal(p->nsp, nsp, p->nsp_len);
}

/* Asserts that the payload equals the JSON text `want` (NULL: no payload). */
static void assert_payload(const sio_packet_t *p, const char *want)
{
    if (want == NULL) {
        assert_null(p->payload);
        return;
    }
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_non_null(w);
    assert_true(json_equal(p->payload, w));
    json_decref(w);
}

static void test_connect(void **state)
{
    sio_packet_t p;
    parse_ok("0", &p);
    assert_int_equal(p.type, SIO_CONNECT);
    assert_nsp(&p, "/");
    assert_int_equal(p.ack_id, -1);
    assert_int_equal(p.attachments, 0);
    assert_payload(&p, NULL);
    sio_packet_clear(&p);

    parse_ok("0{\"token\":\"123\"}", &p);
    assert_nsp(&p, "/");
    assert_payload(&p, "{\"token\":\"123\"}");
    sio_packet_clear(&p);

    parse_ok("0/admin,{\"token\":\"123\"}", &p);
    assert_nsp(&p, "/admin");
    assert_payload(&p, "{\"token\":\"123\"}");
    sio_packet_clear(&p);

    parse_ok("0/custom,", &p);
    assert_nsp(&p, "/custom");
    assert_payload(&p, NULL);
    sio_packet_clear(&p);

    /* Without a comma the namespace is the rest of the packet (Engine.IO "40/custom"). */
    parse_ok("0/custom", &p);
    assert_nsp(&p, "/custom");
    assert_payload(&p, NULL);
    sio_packet_clear(&p);

    parse_ok("0/,", &p); /* explicit default namespace */
    assert_nsp(&p, "/");
    sio_packet_clear(&p);

    parse_err("0[]", SIO_ERR_PAYLOAD);
    parse_err("0\"x\"", SIO_ERR_PAYLOAD);
    parse_err("0null", SIO_ERR_PAYLOAD);
    parse_ok("0/custom,1", &p); /* an ack id without payload is accepted, as the reference does */
    assert_int_equal(p.ack_id, 1);
    sio_packet_clear(&p);
}

static void test_disconnect(void **state)
{
    sio_packet_t p;
    parse_ok("1", &p);
    assert_int_equal(p.type, SIO_DISCONNECT);
    assert_payload(&p, NULL);
    sio_packet_clear(&p);
    parse_ok("1/admin,", &p);
    assert_nsp(&p, "/admin");
    sio_packet_clear(&p);
    parse_err("1{}", SIO_ERR_PAYLOAD);
    parse_err("1/admin,[]", SIO_ERR_PAYLOAD);
    parse_err("1x", SIO_ERR_JSON);
}

static void test_event(void **state)
{
    sio_packet_t p;
    parse_ok("2[\"hello\",1]", &p);
    assert_int_equal(p.type, SIO_EVENT);
    assert_nsp(&p, "/");
    assert_int_equal(p.ack_id, -1);
    assert_payload(&p, "[\"hello\",1]");
    sio_packet_clear(&p);

    parse_ok("2/admin,456[\"project:delete\",123]", &p);
    assert_nsp(&p, "/admin");
    assert_int_equal(p.ack_id, 456);
    assert_payload(&p, "[\"project:delete\",123]");
    sio_packet_clear(&p);

    parse_ok("212[\"message-with-ack\",1,\"2\",{\"3\":[true]}]", &p);
    assert_int_equal(p.ack_id, 12);
    sio_packet_clear(&p);

    parse_ok("2[42]", &p); /* a numeric event name is allowed */
    sio_packet_clear(&p);
    parse_ok("2 [\"a\"] ", &p); /* JSON whitespace, as JSON.parse allows */
    sio_packet_clear(&p);
    parse_ok("2[\"connected\"]", &p); /* near a reserved name but not one */
    sio_packet_clear(&p);
    parse_ok("20[\"a\"]", &p);
    assert_int_equal(p.ack_id, 0);
    sio_packet_clear(&p);
}

static void test_event_invalid(void **state)
{
    parse_err("2{}", SIO_ERR_PAYLOAD);
    parse_err("2[]", SIO_ERR_PAYLOAD);
    parse_err("2[{}]", SIO_ERR_PAYLOAD);
    parse_err("2[null]", SIO_ERR_PAYLOAD);
    parse_err("2\"hello\"", SIO_ERR_PAYLOAD);
    parse_err("2", SIO_ERR_PAYLOAD);
    parse_err("2/admin,", SIO_ERR_PAYLOAD);
    parse_err("2abc[\"message-with-ack\",1]", SIO_ERR_JSON);
    parse_err("2[\"a\"", SIO_ERR_JSON);
    parse_err("2[\"a\"]x", SIO_ERR_JSON);
    parse_err("2[\"a\"][\"b\"]", SIO_ERR_JSON);
    parse_err("2-[\"a\"]", SIO_ERR_JSON);
    /* The namespace swallows the rest when there is no comma. */
    parse_err("2/admin[\"a\"]", SIO_ERR_PAYLOAD);
    static const char *const reserved[] = {"connect",       "connect_error", "disconnect",
                                           "disconnecting", "newListener",   "removeListener"};
    for (size_t i = 0; i < 6; i++) {
        char s[64];
        snprintf(s, sizeof(s), "2[\"%s\",1]", reserved[i]);
        parse_err(s, SIO_ERR_PAYLOAD);
        snprintf(s, sizeof(s), "51-[\"%s\",1]", reserved[i]);
        parse_err(s, SIO_ERR_PAYLOAD);
    }
}

static void test_ack(void **state)
{
    sio_packet_t p;
    parse_ok("3/admin,456[]", &p);
    assert_int_equal(p.type, SIO_ACK);
    assert_nsp(&p, "/admin");
    assert_int_equal(p.ack_id, 456);
    assert_payload(&p, "[]");
    sio_packet_clear(&p);
    parse_ok("31[{\"ok\":true}]", &p);
    assert_int_equal(p.ack_id, 1);
    sio_packet_clear(&p);
    parse_err("31{}", SIO_ERR_PAYLOAD);
    parse_err("31", SIO_ERR_PAYLOAD);
    parse_err("31\"x\"", SIO_ERR_PAYLOAD);
}

static void test_connect_error(void **state)
{
    sio_packet_t p;
    parse_ok("4{\"message\":\"Not authorized\"}", &p);
    assert_int_equal(p.type, SIO_CONNECT_ERROR);
    assert_payload(&p, "{\"message\":\"Not authorized\"}");
    sio_packet_clear(&p);
    parse_ok("4/chat,\"oops\"", &p);
    assert_nsp(&p, "/chat");
    assert_payload(&p, "\"oops\"");
    sio_packet_clear(&p);
    parse_err("4", SIO_ERR_PAYLOAD);
    parse_err("4[]", SIO_ERR_PAYLOAD);
    parse_err("41", SIO_ERR_PAYLOAD); /* "1" is an ack id, then nothing */
    parse_err("4abc", SIO_ERR_JSON);
}

static void test_binary(void **state)
{
    sio_packet_t p;
    parse_ok("51-[\"hello\",{\"_placeholder\":true,\"num\":0}]", &p);
    assert_int_equal(p.type, SIO_BINARY_EVENT);
    assert_int_equal(p.attachments, 1);
    assert_nsp(&p, "/");
    assert_int_equal(p.ack_id, -1);
    sio_packet_clear(&p);

    parse_ok("52-/admin,456[\"project:delete\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
             &p);
    assert_int_equal(p.attachments, 2);
    assert_nsp(&p, "/admin");
    assert_int_equal(p.ack_id, 456);
    sio_packet_clear(&p);

    parse_ok("61-/admin,456[{\"_placeholder\":true,\"num\":0}]", &p);
    assert_int_equal(p.type, SIO_BINARY_ACK);
    assert_int_equal(p.attachments, 1);
    assert_int_equal(p.ack_id, 456);
    sio_packet_clear(&p);

    parse_ok("50-[\"a\"]", &p);
    assert_int_equal(p.attachments, 0);
    sio_packet_clear(&p);
    parse_ok("564-[\"a\"]", &p);
    assert_int_equal(p.attachments, SIO_ATTACHMENTS_MAX);
    sio_packet_clear(&p);
}

static void test_binary_invalid(void **state)
{
    parse_err("5", SIO_ERR_ATTACHMENTS);
    parse_err("51", SIO_ERR_ATTACHMENTS);        /* truncated before '-' */
    parse_err("5-[\"a\"]", SIO_ERR_ATTACHMENTS); /* '-' is required after digits */
    parse_err("51[\"a\"]", SIO_ERR_ATTACHMENTS);
    parse_err("5x-[\"a\"]", SIO_ERR_ATTACHMENTS);
    parse_err("565-[\"a\"]", SIO_ERR_ATTACHMENTS); /* over SIO_ATTACHMENTS_MAX */
    parse_err("599999999999999999999-[\"a\"]", SIO_ERR_ATTACHMENTS);
    parse_err("6", SIO_ERR_ATTACHMENTS);
    parse_err("61-{}", SIO_ERR_PAYLOAD);
    parse_err("51-{}", SIO_ERR_PAYLOAD);
    parse_err("51-", SIO_ERR_PAYLOAD);
    parse_err("51-[", SIO_ERR_JSON);
}

static void test_type_errors(void **state)
{
    parse_err("", SIO_ERR_EMPTY);
    parse_err("7", SIO_ERR_TYPE);
    parse_err("9[\"a\"]", SIO_ERR_TYPE);
    parse_err("abc", SIO_ERR_TYPE); /* Engine.IO "4abc" */
    parse_err("/", SIO_ERR_TYPE);
    parse_err("[\"a\"]", SIO_ERR_TYPE);
    parse_err(" 2[\"a\"]", SIO_ERR_TYPE);
}

static void test_ack_id_range(void **state)
{
    sio_packet_t p;
    parse_ok("29007199254740991[\"a\"]", &p);
    assert_int_equal(p.ack_id, 9007199254740991LL);
    sio_packet_clear(&p);
    parse_ok("2000000000000000000000001[\"a\"]", &p); /* leading zeros do not count */
    assert_int_equal(p.ack_id, 1);
    sio_packet_clear(&p);
    parse_err("29007199254740992[\"a\"]", SIO_ERR_ACK_ID);
    parse_err("2/x,99999999999999999999999999[\"a\"]", SIO_ERR_ACK_ID);
    parse_err("318446744073709551616[]", SIO_ERR_ACK_ID);
}

static void test_nsp_limits(void **state)
{
    char s[SIO_NSP_MAX + 16];
    sio_packet_t p;
    s[0] = '0';
    s[1] = '/';
    memset(s + 2, 'n', SIO_NSP_MAX - 1);
    strcpy(s + 1 + SIO_NSP_MAX, ",");
    parse_ok(s, &p); /* exactly SIO_NSP_MAX bytes */
    assert_int_equal(p.nsp_len, SIO_NSP_MAX);
    sio_packet_clear(&p);
    strcpy(s + 1 + SIO_NSP_MAX, "n,");
    parse_err(s, SIO_ERR_NSP);
    s[strlen(s) - 1] = '\0'; /* too long, ending without a comma */
    parse_err(s, SIO_ERR_NSP);
}

static void test_payload_with_nul(void **state)
{
    static const char s[] = "2[\"a\\u0000b\",\"x\"]";
    sio_packet_t p;
    assert_int_equal(sio_packet_parse(s, sizeof(s) - 1, &p), 0);
    assert_int_equal(json_string_length(json_array_get(p.payload, 0)), 3);
    sio_packet_clear(&p);
    /* A raw NUL byte inside the JSON text is not valid JSON. */
    static const char raw[] = "2[\"a\"]\0";
    parse_err("2[\"a", SIO_ERR_JSON);
    assert_int_equal(sio_packet_parse(raw, sizeof(raw) - 1, &p), SIO_ERR_JSON);
}

static void check_header(sio_ptype_t type, unsigned att, const char *nsp, int64_t ack, const char *want)
{
    buf_t b = BUF_INIT;
    buf_append_str(&b, "x"); /* appends after existing content */
    sio_packet_encode_header(&b, type, att, nsp, nsp ? strlen(nsp) : 0, ack);
    assert_string_equal(b.base + 1, want);
    buf_free(&b);
}

static void test_encode_header(void **state)
{
    check_header(SIO_BINARY_EVENT, 2, "/custom", 789, "52-/custom,789");
    check_header(SIO_EVENT, 0, "/", -1, "2");
    check_header(SIO_CONNECT, 0, "/custom", -1, "0/custom,");
    check_header(SIO_CONNECT, 0, NULL, -1, "0");
    check_header(SIO_DISCONNECT, 0, "/a", -1, "1/a,");
    check_header(SIO_ACK, 0, "/", 0, "30");
    check_header(SIO_CONNECT_ERROR, 0, "/", -1, "4");
    check_header(SIO_BINARY_ACK, 0, "/", 9007199254740991LL, "60-9007199254740991");
}

/* Encodes header + payload, parses it back and compares every field. */
static void round_trip(sio_ptype_t type, unsigned att, const char *nsp, int64_t ack, const char *json)
{
    buf_t b = BUF_INIT;
    sio_packet_encode_header(&b, type, att, nsp, strlen(nsp), ack);
    if (json)
        buf_append_str(&b, json);
    sio_packet_t p;
    int err = sio_packet_parse(b.base, b.len, &p);
    if (err)
        fail_msg("\"%s\": %s", b.base, sio_packet_strerror(err));
    assert_int_equal(p.type, type);
    assert_int_equal(p.attachments, att);
    assert_nsp(&p, nsp);
    assert_int_equal(p.ack_id, ack);
    assert_payload(&p, json);
    sio_packet_clear(&p);
    buf_free(&b);
}

static void test_round_trips(void **state)
{
    static const char *const nsps[] = {"/", "/chat", "/x-y_z.1"};
    for (size_t n = 0; n < 3; n++) {
        for (int64_t ack = -1; ack <= 10; ack += 11) {
            round_trip(SIO_CONNECT, 0, nsps[n], ack, NULL);
            round_trip(SIO_CONNECT, 0, nsps[n], ack, "{\"consent\":true}");
            round_trip(SIO_DISCONNECT, 0, nsps[n], ack, NULL);
            round_trip(SIO_EVENT, 0, nsps[n], ack, "[\"chat:message\",{\"text\":\"hi\"}]");
            round_trip(SIO_EVENT, 0, nsps[n], ack, "[1,2,3]");
            round_trip(SIO_ACK, 0, nsps[n], ack, "[]");
            round_trip(SIO_CONNECT_ERROR, 0, nsps[n], ack, "{\"message\":\"banned\"}");
            round_trip(SIO_CONNECT_ERROR, 0, nsps[n], ack, "\"text\"");
            round_trip(SIO_BINARY_EVENT, 3, nsps[n], ack, "[\"up\",{\"_placeholder\":true,\"num\":0}]");
            round_trip(SIO_BINARY_ACK, 64, nsps[n], ack, "[{\"_placeholder\":true,\"num\":0}]");
        }
    }
}

static void test_clear_zeroed_and_strerror(void **state)
{
    sio_packet_t p;
    memset(&p, 0, sizeof(p));
    sio_packet_clear(&p);
    sio_packet_clear(&p);
    assert_string_equal(sio_packet_strerror(0), "ok");
    for (int e = SIO_ERR_PAYLOAD; e <= SIO_ERR_EMPTY; e++)
        assert_string_not_equal(sio_packet_strerror(e), "unknown error");
    assert_string_equal(sio_packet_strerror(-1), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_event_invalid),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_connect_error),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_binary_invalid),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_ack_id_range),
        cmocka_unit_test(test_nsp_limits),
        cmocka_unit_test(test_payload_with_nul),
        cmocka_unit_test(test_encode_header),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_clear_zeroed_and_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
