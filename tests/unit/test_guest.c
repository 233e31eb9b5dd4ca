/* guest ids, tokens and the secret file (protocol.md §2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/guest.h"
#include "redis/redis.h"

static guest_secret_t secret(const char *text)
{
    guest_secret_t s = {.len = strlen(text)};
    memcpy(s.key, text, s.len);
    return s;
}

static void test_ids_are_22_url_safe_chars_and_differ(void **state)
{
    char a[GUEST_ID_LEN + 1], b[GUEST_ID_LEN + 1];
    guest_new_id(a);
    guest_new_id(b);
    assert_int_equal(strlen(a), 22);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 22);
    assert_string_not_equal(a, b);
    assert_true(guest_id_valid(a));
    assert_false(guest_id_valid("short"));
    assert_false(guest_id_valid("AAAAAAAAAAAAAAAAAAAAA!"));
    assert_false(guest_id_valid("AAAAAAAAAAAAAAAAAAAAAB")); /* bits past the 128th are set */
}

static void test_token_round_trip(void **state)
{
    guest_secret_t s = secret("0123456789abcdef0123456789abcdef-shared");
    char id[GUEST_ID_LEN + 1], tok[GUEST_TOKEN_MAX], out[GUEST_ID_LEN + 1];
    guest_new_id(id);
    guest_token_make(&s, id, 2000000000, tok);
    assert_int_equal(strncmp(tok, "v1.", 3), 0);
    int64_t exp = 0;
    assert_int_equal(guest_token_verify(&s, tok, 1900000000, out, &exp), 0);
    assert_string_equal(out, id);
    assert_int_equal(exp, 2000000000);
}

/* The MAC is HMAC-SHA256 in base64url, checked against a value computed elsewhere (openssl dgst). */
static void test_token_known_answer(void **state)
{
    guest_secret_t s = secret("nearchat-test-secret-of-32-bytes!!");
    char tok[GUEST_TOKEN_MAX];
    guest_token_make(&s, "AAAAAAAAAAAAAAAAAAAAAA", 1800000000, tok);
    char cmd[512], expected[128] = "";
    snprintf(cmd, sizeof(cmd),
             "printf %%s 'v1.AAAAAAAAAAAAAAAAAAAAAA.1800000000' | openssl dgst -sha256 -hmac '%s' -binary | "
             "base64 | tr '+/' '-_' | tr -d '=\\n'",
             "nearchat-test-secret-of-32-bytes!!");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(expected, sizeof(expected), p));
    pclose(p);
    assert_string_equal(strrchr(tok, '.') + 1, expected);
}

static void test_token_refusals(void **state)
{
    guest_secret_t s = secret("0123456789abcdef0123456789abcdef-shared");
    guest_secret_t other = secret("another-secret-another-secret-another");
    char id[GUEST_ID_LEN + 1], tok[GUEST_TOKEN_MAX], out[GUEST_ID_LEN + 1] = "untouched";
    int64_t exp = -1;
    guest_new_id(id);
    guest_token_make(&s, id, 2000000000, tok);
    assert_int_equal(guest_token_verify(&other, tok, 1900000000, out, &exp), GUEST_ERR_MAC);
    assert_int_equal(guest_token_verify(&s, tok, 2000000000, out, &exp), GUEST_ERR_EXPIRED);
    char bad[GUEST_TOKEN_MAX];
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[strlen(bad) - 1] ^= 1;
    assert_int_equal(guest_token_verify(&s, bad, 1900000000, out, &exp), GUEST_ERR_MAC);
    snprintf(bad, sizeof(bad), "%s", tok);
    char *e = strchr(bad + 3, '.') + 1;
    e[0] = e[0] == '2' ? '3' : '2'; /* a later expiry, same mac */
    assert_int_equal(guest_token_verify(&s, bad, 1900000000, out, &exp), GUEST_ERR_MAC);
    const char *malformed[] = {"",
                               "v1",
                               "v1.",
                               "v1...",
                               "v2.AAAAAAAAAAAAAAAAAAAAAA.1.x",
                               "v1.short.1.x",
                               "v1.AAAAAAAAAAAAAAAAAAAAAA.12a.x",
                               "v1.AAAAAAAAAAAAAAAAAAAAAA..x",
                               "v1.AAAAAAAAAAAAAAAAAAAAAA.99999999999999999.x"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        assert_int_equal(guest_token_verify(&s, malformed[i], 1900000000, out, &exp), GUEST_ERR_MALFORMED);
    char huge[4096];
    memset(huge, 'v', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(guest_token_verify(&s, huge, 1900000000, out, &exp), GUEST_ERR_MALFORMED);
    assert_string_equal(out, "untouched");
    assert_int_equal(exp, -1);
}

static void test_secret_file(void **state)
{
    char dir[] = "/tmp/guest-test-XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/var/secret", dir);
    guest_secret_t s;
    int created = 0;
    assert_int_equal(guest_secret_load(path, &s, &created, err, sizeof(err)), 0);
    assert_true(created);
    assert_int_equal(s.len, 96);
    guest_secret_t again;
    assert_int_equal(guest_secret_load(path, &again, &created, err, sizeof(err)), 0);
    assert_false(created);
    assert_memory_equal(s.key, again.key, s.len);
    FILE *f = fopen(path, "w");
    fputs("  too short  \n", f);
    fclose(f);
    assert_int_equal(guest_secret_load(path, &s, &created, err, sizeof(err)), GUEST_ERR_SECRET);
    assert_non_null(strstr(err, "at least 32"));
    f = fopen(path, "w");
    fputs("\n  0123456789abcdef0123456789abcdef  \n", f);
    fclose(f);
    assert_int_equal(guest_secret_load(path, &s, &created, err, sizeof(err)), 0);
    assert_int_equal(s.len, 32); /* surrounding white space ignored */
    unlink(path);
    snprintf(path, sizeof(path), "%s/var", dir);
    rmdir(path);
    rmdir(dir);
}

static void test_alias(void **state)
{
    char a[64];
    guest_alias(a, sizeof(a));
    assert_non_null(strchr(a, ' '));
    assert_true(a[0] >= 'A' && a[0] <= 'Z');
}

static void test_redis_url(void **state)
{
    redis_target_t t;
    char err[256];
    assert_int_equal(redis_target_parse("redis://127.0.0.1:6380/2", &t, err, sizeof(err)), 0);
    assert_int_equal(t.db, 2);
    assert_string_equal(t.display, "127.0.0.1:6380/2");
    assert_int_equal(redis_target_parse("redis://:s3cret@127.0.0.1", &t, err, sizeof(err)), 0);
    assert_string_equal(t.password, "s3cret");
    assert_null(strstr(t.display, "s3cret"));
    assert_int_equal(redis_target_parse("redis://[::1]:7000/0", &t, err, sizeof(err)), 0);
    const char *bad[] = {"http://x", "redis://127.0.0.1:port", "redis://127.0.0.1:6379/x", "redis://[::1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(redis_target_parse(bad[i], &t, err, sizeof(err)), REDIS_CLIENT_ERR_URL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_22_url_safe_chars_and_differ),
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test(test_token_known_answer),
        cmocka_unit_test(test_token_refusals),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_redis_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
