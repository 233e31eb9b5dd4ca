/* chat_utf8_valid: what chat:message accepts as text and ids (protocol.md §5: UTF-8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat/chat.h"

static int valid(const char *s)
{
    return chat_utf8_valid(s, strlen(s));
}

static void test_accepts_well_formed_text(void **state)
{
    assert_true(valid("hello"));
    assert_true(valid("ça va ? 👋 — 日本語"));
    assert_true(valid("\x7f"));
    assert_true(valid("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last code point */
    assert_true(chat_utf8_valid("", 0));
}

static void test_refuses_malformed_text(void **state)
{
    const char *bad[] = {
        "\x80",             /* a continuation byte alone */
        "\xc3",             /* truncated */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, three bytes */
        "\xed\xa0\x80",     /* a UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "\xf8\x88\x80\x80\x80",
        "\xff",
        "ok\xe2\x82", /* truncated at the end */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(valid(bad[i]));
    assert_false(chat_utf8_valid("a\0b", 3)); /* NUL inside */
}

static void test_wal_entry_round_trip(void **state)
{
    (void)state;
    chat_wal_entry_t e;
    /* the text keeps every '|' of its own */
    assert_int_equal(chat_wal_parse("AAAAAAAAAAAAAAAAAAAAAA|42|m 1|BBBBBBBBBBBBBBBBBBBBBB|1700|1701|a|b||c", &e), 0);
    assert_string_equal(e.sid, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(e.seq, 42);
    assert_string_equal(e.id, "m 1");
    assert_string_equal(e.from, "BBBBBBBBBBBBBBBBBBBBBB");
    assert_int_equal(e.ts, 1700);
    assert_int_equal(e.dts, 1701);
    assert_string_equal(e.text, "a|b||c");
    assert_int_equal(chat_wal_parse("s|1|i|f|2|3|", &e), 0);
    assert_string_equal(e.text, "");
}

static void test_wal_entry_refuses_what_is_not_one(void **state)
{
    (void)state;
    chat_wal_entry_t e;
    const char *bad[] = {
        "",
        "s|1|i|f|2|3",                                           /* no text part */
        "s|x|i|f|2|3|t",                                         /* seq not a number */
        "s|1x|i|f|2|3|t",                                        /* trailing garbage */
        "s||i|f|2|3|t",                                          /* empty seq */
        "|1|i|f|2|3|t",                                          /* empty sid */
        "s|1||f|2|3|t",                                          /* empty id */
        "s|1|i|f|2|99999999999999999999999|t",                   /* a number longer than any */
        "sssssssssssssssssssssssssssssssssssssssss|1|i|f|2|3|t", /* sid past its room */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(chat_wal_parse(bad[i], &e), -1);
}

/* A script's answer as redis_strings_from gives it. */
static redis_strings_t strings(const char *status, int n, const char *const *v)
{
    redis_strings_t s = {.status = status, .n = n};
    for (int i = 0; i < n; i++)
        s.v[i] = v[i];
    if (strcmp(status, "err") == 0)
        s.err = n > 0 ? v[0] : "unavailable";
    return s;
}

static void test_results_of_send(void **state)
{
    (void)state;
    chat_result_t r;
    const char *fresh[] = {"7", "1700000000000", "peer-id", "nc:w:n1:0"};
    redis_strings_t s = strings("new", 4, fresh);
    chat_result_of(CHAT_OP_SEND, &s, &r);
    assert_null(r.err);
    assert_false(r.dup);
    assert_int_equal(r.seq, 7);
    assert_int_equal(r.ts, 1700000000000LL);
    assert_string_equal(r.msg_status, "pending");
    assert_string_equal(r.peer, "peer-id");
    assert_string_equal(r.peer_channel, "nc:w:n1:0");
    const char *again[] = {"7", "1700000000000", "delivered", "peer-id", ""};
    s = strings("dup", 5, again);
    chat_result_of(CHAT_OP_SEND, &s, &r);
    assert_true(r.dup);
    assert_string_equal(r.msg_status, "delivered");
    assert_string_equal(r.peer_channel, "");
    const char *refused[] = {"not_in_session"};
    s = strings("err", 1, refused);
    chat_result_of(CHAT_OP_SEND, &s, &r);
    assert_string_equal(r.err, "not_in_session");
    /* a shape nobody wrote: unavailable, never an index past the reply */
    s = strings("new", 2, fresh);
    chat_result_of(CHAT_OP_SEND, &s, &r);
    assert_string_equal(r.err, "unavailable");
    s = strings("what", 0, NULL);
    chat_result_of(CHAT_OP_RELAY, &s, &r);
    assert_string_equal(r.err, "unavailable");
}

static void test_results_of_the_other_calls(void **state)
{
    (void)state;
    chat_result_t r;
    redis_strings_t s = strings("gone", 0, NULL);
    chat_result_of(CHAT_OP_STATE, &s, &r);
    assert_null(r.err);
    assert_true(r.gone);
    const char *st[] = {"queued"};
    s = strings("ok", 1, st);
    chat_result_of(CHAT_OP_STATUS, &s, &r);
    assert_false(r.gone);
    assert_string_equal(r.msg_status, "queued");
    const char *relay[] = {"peer-id", "nc:w:n0:1"};
    s = strings("ok", 2, relay);
    chat_result_of(CHAT_OP_RELAY, &s, &r);
    assert_string_equal(r.peer, "peer-id");
    assert_string_equal(r.peer_channel, "nc:w:n0:1");
    s = strings("none", 0, NULL);
    chat_result_of(CHAT_OP_PRESENCE, &s, &r);
    assert_true(r.none);
    assert_string_equal(r.sid, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_well_formed_text), cmocka_unit_test(test_refuses_malformed_text),
        cmocka_unit_test(test_wal_entry_round_trip),     cmocka_unit_test(test_wal_entry_refuses_what_is_not_one),
        cmocka_unit_test(test_results_of_send),          cmocka_unit_test(test_results_of_the_other_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
