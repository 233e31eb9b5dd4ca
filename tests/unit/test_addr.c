/* Unit tests for the canonical text of addresses (geo_addr_canonical in geo/geo.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../geo/geo.h"

static void expect(const char *in, const char *want)
{
    char out[GEO_CANONICAL_MAX];
    assert_int_equal(geo_addr_canonical(in, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_spellings_of_one_address_agree(void **state)
{
    expect("2001:DB8:1:0:0:0:0:77", "2001:db8:1::77");
    expect("2001:db8:1::77", "2001:db8:1::77");
    expect("2001:0db8:0001:0000:0000:0000:0000:0077", "2001:db8:1::77");
    expect("::ffff:10.1.0.78", "10.1.0.78");
    expect("::FFFF:0a01:004e", "10.1.0.78");
    expect("10.1.0.78", "10.1.0.78");
    expect("::1", "::1");
    expect("0:0:0:0:0:0:0:1", "::1");
}

static void test_cidrs(void **state)
{
    expect("2001:DB8::/32", "2001:db8::/32");
    expect("::ffff:10.0.0.0/104", "10.0.0.0/8");
    expect("::ffff:0:0/95", "::ffff:0.0.0.0/95"); /* wider than the mapped range stays IPv6 */
    expect("10.9.0.0/16", "10.9.0.0/16");
}

static void test_not_addresses(void **state)
{
    static const char *const bad[] = {"",         "10.1",           "10.1.0.256", "1.2.3.4/33",   "::1/129",
                                      "1.2.3.4/", "1.2.3.4/08",     "1.2.3.4/-1", "fe80::1%eth0", " 1.2.3.4",
                                      "host",     "1.2.3.4,5.6.7.8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[GEO_CANONICAL_MAX] = "x";
        assert_int_equal(geo_addr_canonical(bad[i], out, sizeof(out)), -1);
        assert_string_equal(out, "");
    }
    char small[4];
    assert_int_equal(geo_addr_canonical("10.1.0.78", small, sizeof(small)), -1);
    assert_int_equal(geo_addr_canonical(NULL, small, sizeof(small)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spellings_of_one_address_agree),
        cmocka_unit_test(test_cidrs),
        cmocka_unit_test(test_not_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
