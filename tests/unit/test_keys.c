/* keys: the names of the Redis keys, from the one list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keys/keys.h"

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(keys_name(KEYS_GUEST, "abc").s, "{nc}:g:abc");
    assert_string_equal(keys_name(KEYS_MESSAGES, "sid").s, "{nc}:cm:sid");
    assert_string_equal(keys_name(KEYS_BAN_IP, "2001:db8::1").s, "{nc}:ban:ip:2001:db8::1");
    assert_string_equal(keys_name(KEYS_WAL, NULL).s, "{nc}:hwal");
    assert_string_equal(keys_name(KEYS_BANS, "").s, "{nc}:bans");
}

static void test_every_key_shares_the_tag(void **state)
{
    (void)state;
    for (int f = 0; f < KEYS_FAMILIES; f++) {
        keys_name_t k = keys_name((keys_family_t)f, "x");
        assert_int_equal(strncmp(k.s, KEYS_TAG, strlen(KEYS_TAG)), 0);
        assert_true(strlen(k.s) > strlen(KEYS_TAG) + 1);
    }
}

static void test_an_id_past_its_room_gives_no_key(void **state)
{
    (void)state;
    char id[KEYS_ID_MAX + 64];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    assert_string_equal(keys_name(KEYS_NODE_GUESTS, id).s, "");
    id[KEYS_ID_MAX] = '\0';
    assert_int_equal(strlen(keys_name(KEYS_NODE_GUESTS, id).s), strlen("{nc}:ng:") + KEYS_ID_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_every_key_shares_the_tag),
        cmocka_unit_test(test_an_id_past_its_room_gives_no_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
