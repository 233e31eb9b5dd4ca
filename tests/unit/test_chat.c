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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_well_formed_text),
        cmocka_unit_test(test_refuses_malformed_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
