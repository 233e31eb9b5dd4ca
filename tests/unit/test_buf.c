/* Unit tests for server/buf: growth, appends, allocation helpers, base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "buf/buf.h"

static void test_append_and_grow(void **state)
{
    buf_t b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_append(&b, "abc", 3);
    assert_int_equal(b.len, 3000);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.base + 2997, "abc", 3);
    assert_int_equal(b.base[b.len], '\0'); /* appends keep a NUL after the data */
    buf_free(&b);
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_append_str_char_empty(void **state)
{
    buf_t b = BUF_INIT;
    buf_append(&b, NULL, 0);
    assert_int_equal(b.len, 0);
    buf_append_str(&b, "hello");
    buf_append_char(&b, ' ');
    buf_append_str(&b, "");
    buf_append_str(&b, "world");
    assert_string_equal(b.base, "hello world");
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    buf_append_str(&b, "x");
    assert_string_equal(b.base, "x");
    buf_free(&b);
    buf_free(&b); /* freeing twice is harmless: the buffer is empty */
}

static void test_reserve(void **state)
{
    buf_t b = BUF_INIT;
    buf_reserve(&b, 10000);
    assert_true(b.cap >= 10000);
    size_t cap = b.cap;
    char *base = b.base;
    buf_append(&b, "x", 1);
    assert_ptr_equal(b.base, base); /* no reallocation within reserved room */
    assert_int_equal(b.cap, cap);
    buf_free(&b);
}

static void test_append_u64(void **state)
{
    buf_t b = BUF_INIT;
    buf_append_u64(&b, 0);
    buf_append_char(&b, ',');
    buf_append_u64(&b, 789);
    buf_append_char(&b, ',');
    buf_append_u64(&b, UINT64_MAX);
    assert_string_equal(b.base, "0,789,18446744073709551615");
    buf_free(&b);
}

/* The JSON strings of hot paths read back as what was written, and match jansson's own writing byte for byte. */
static void test_json_string(void **state)
{
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
        {"", 0},
        {"plain text", 10},
        {"\"quoted\" and \\back\\slashed", 27},
        {"line\nfeed\rreturn\ttab\bback\fform", 30},
        {"\x01\x1f\x7f", 3},
        {"ça va ? 👋 \xe2\x80\xa8 </script>", 27},
        {"nul\0inside", 10},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_t b = BUF_INIT;
        buf_append_str(&b, "x"); /* appends, after what is there */
        buf_append_json_string(&b, cases[i].s, cases[i].len);
        json_t *mine = json_loadb(b.base + 1, b.len - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(mine);
        assert_int_equal(json_string_length(mine), cases[i].len);
        assert_memory_equal(json_string_value(mine), cases[i].s, cases[i].len);
        json_t *ref = json_stringn(cases[i].s, cases[i].len);
        char *theirs = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_int_equal(strlen(theirs), b.len - 1);
        assert_memory_equal(theirs, b.base + 1, b.len - 1);
        free(theirs);
        json_decref(ref);
        json_decref(mine);
        buf_free(&b);
    }
}

/* A copy that fits is whole; one that does not is cut and still ends with NUL. */
static void test_copy_str(void **state)
{
    char small[4];
    buf_copy_str(small, sizeof(small), "ab");
    assert_string_equal(small, "ab");
    buf_copy_str(small, sizeof(small), "abcdef");
    assert_string_equal(small, "abc");
    buf_copy_str(small, sizeof(small), "");
    assert_string_equal(small, "");
}

static void test_xalloc(void **state)
{
    char *p = buf_xmalloc(0);
    assert_non_null(p);
    free(p);
    int *z = buf_xcalloc(16, sizeof(int));
    for (int i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    z = buf_xrealloc(z, 1024 * sizeof(int));
    assert_int_equal(z[15], 0);
    free(z);
    char *s = buf_xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = buf_xstrndup("ab\0cd", 5); /* stops at the NUL, like strndup */
    assert_string_equal(s, "ab");
    free(s);
}

static void check_b64(const char *plain, size_t len, const char *encoded)
{
    buf_t b = BUF_INIT;
    buf_append_base64(&b, (const uint8_t *)plain, len);
    assert_int_equal(b.len, strlen(encoded));
    assert_memory_equal(b.base, encoded, b.len);
    uint8_t out[64];
    assert_int_equal(buf_base64_decode(out, encoded, strlen(encoded)), (long)len);
    assert_memory_equal(out, plain, len);
    buf_free(&b);
}

/* RFC 4648 section 10 vectors. */
static void test_base64_vectors(void **state)
{
    check_b64("", 0, "");
    check_b64("f", 1, "Zg==");
    check_b64("fo", 2, "Zm8=");
    check_b64("foo", 3, "Zm9v");
    check_b64("foob", 4, "Zm9vYg==");
    check_b64("fooba", 5, "Zm9vYmE=");
    check_b64("foobar", 6, "Zm9vYmFy");
    check_b64("\x01\x02\x03\x04", 4, "AQIDBA==");
    check_b64("\xfb\xff\xbf", 3, "+/+/");
}

static void test_base64_round_trip_all_bytes_in_place(void **state)
{
    uint8_t data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (uint8_t)i;
    for (size_t n = 0; n <= sizeof(data); n++) {
        buf_t b = BUF_INIT;
        buf_append_base64(&b, data, n);
        /* In place: the output overwrites the input it came from. */
        long got = buf_base64_decode((uint8_t *)b.base, b.base, b.len);
        assert_int_equal(got, (long)n);
        assert_memory_equal(b.base, data, n);
        buf_free(&b);
    }
}

static void test_base64_invalid(void **state)
{
    static const char *const bad[] = {
        "A",        "AB",   "ABC",    /* not a multiple of 4 */
        "AB=C",     "A===", "====",   /* padding in the wrong place */
        "Zg==Zg==",                   /* padding before the end */
        "Zm9v!mFy", "Zm 9", "Zm9v\n", /* characters outside the alphabet */
        "Zm-_",                       /* base64url is not accepted */
        "=AAA",
    };
    uint8_t out[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(buf_base64_decode(out, bad[i], strlen(bad[i])), -1);
    assert_int_equal(buf_base64_decode(out, "Zm\0v", 4), -1); /* embedded NUL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_append_str_char_empty),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_append_u64),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_copy_str),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_round_trip_all_bytes_in_place),
        cmocka_unit_test(test_base64_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
