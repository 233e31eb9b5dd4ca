/* matcher: the script's answers as typed results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../matcher/matcher.h"

static redis_strings_t strings(const char *status, int n, const char *const *v)
{
    redis_strings_t s = {.status = status, .n = n};
    for (int i = 0; i < n; i++)
        s.v[i] = v[i];
    if (strcmp(status, "err") == 0)
        s.err = n > 0 ? v[0] : "unavailable";
    return s;
}

static void test_hello_back_in_a_session(void **state)
{
    (void)state;
    match_result_t r;
    const char *v[] = {"sid", "Blue Fox", "Paris", "FR", "17.6", "1700000000000"};
    redis_strings_t s = strings("session", 6, v);
    match_result_of(MATCH_OP_HELLO, &s, &r);
    assert_null(r.err);
    assert_string_equal(r.status, "session");
    assert_string_equal(r.sid, "sid");
    assert_string_equal(r.alias, "Blue Fox");
    assert_string_equal(r.peer.city, "Paris");
    assert_string_equal(r.peer.country, "FR");
    assert_true(r.has_distance);
    assert_true(r.distance_km == 18.0);
    assert_int_equal(r.started, 1700000000000LL);
    const char *far[] = {"sid", "Blue Fox", "", "", "", "1"};
    s = strings("session", 6, far);
    match_result_of(MATCH_OP_HELLO, &s, &r);
    assert_false(r.has_distance);
    s = strings("banned", 0, NULL);
    match_result_of(MATCH_OP_HELLO, &s, &r);
    assert_null(r.err);
    assert_string_equal(r.status, "banned");
    assert_string_equal(r.sid, "");
}

static void test_request_widen_and_accept(void **state)
{
    (void)state;
    match_result_t r;
    const char *req[] = {"1", "3"};
    redis_strings_t s = strings("ok", 2, req);
    match_result_of(MATCH_OP_REQUEST, &s, &r);
    assert_int_equal(r.stage, 1);
    assert_int_equal(r.scope, 3);
    const char *widen[] = {"2", "10400", "3"};
    s = strings("ok", 3, widen);
    match_result_of(MATCH_OP_WIDEN, &s, &r);
    assert_int_equal(r.stage, 2);
    const char *acc[] = {"sid", "requester", "Paris", "FR", "", "", "1700000000001"};
    s = strings("ok", 7, acc);
    match_result_of(MATCH_OP_ACCEPT, &s, &r);
    assert_null(r.err);
    assert_string_equal(r.requester, "requester");
    assert_string_equal(r.requester_place.city, "Paris");
    assert_string_equal(r.accepter_place.city, "");
    assert_int_equal(r.started, 1700000000001LL);
    const char *refused[] = {"unknown_proposal"};
    s = strings("err", 1, refused);
    match_result_of(MATCH_OP_ACCEPT, &s, &r);
    assert_string_equal(r.err, "unknown_proposal");
    /* short answers are unavailable, never read past */
    s = strings("ok", 3, acc);
    match_result_of(MATCH_OP_ACCEPT, &s, &r);
    assert_string_equal(r.err, "unavailable");
    s = strings("ok", 1, req);
    match_result_of(MATCH_OP_REQUEST, &s, &r);
    assert_string_equal(r.err, "unavailable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_back_in_a_session),
        cmocka_unit_test(test_request_widen_and_accept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
