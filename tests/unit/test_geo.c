/*
 * Unit tests for geo: City lookups against the fixture database, trusted
 * proxies, X-Forwarded-For, device locations and distances.
 *
 * The database is built by `make` from tests/fixtures/geo/cities.csv with
 * scripts/gen-geo-db; `make unit` passes its path in GEO_TEST_DB. Without it
 * the lookup group fails (it is not skipped): a missing fixture must not pass
 * for a green run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

#include <cmocka.h>

#include "../../geo/geo.h"

#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

/* ---- lookups (group state: the open database) ---- */

static int db_group_setup(void **state)
{
    const char *path = getenv("GEO_TEST_DB");
    char why[256] = "";
    int err = 1;

    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "test_geo: FAIL: GEO_TEST_DB is not set; run `make unit`, which builds "
                        "build/geo/test-city.mmdb and sets it\n");
        return -1;
    }
    geo_db_t *db = geo_db_open(path, &err, why, sizeof(why));
    if (db == NULL) {
        fprintf(stderr, "test_geo: FAIL: cannot open GEO_TEST_DB=%s: %s\n", path, why);
        return -1;
    }
    if (err != 0 || why[0] != '\0') {
        geo_db_close(db);
        return -1;
    }
    *state = db;
    return 0;
}

static int db_group_teardown(void **state)
{
    geo_db_close(*state);
    *state = NULL;
    return 0;
}

static void test_lookup_ipv4_cities(void **state)
{
    static const struct {
        const char *ip;
        uint32_t id;
        const char *city, *country;
        double lat, lon;
    } cases[] = {
        {"10.1.0.1", 2988507, "Paris", "FR", 48.8566, 2.3522},
        {"10.2.200.3", 2970153, "Versailles", "FR", 48.8049, 2.1204},
        {"10.3.255.255", 2996944, "Lyon", "FR", 45.7640, 4.8357},
        {"10.4.0.0", 2950159, "Berlin", "DE", 52.5200, 13.4050},
        {"10.5.1.1", 2852458, "Potsdam", "DE", 52.3906, 13.0645},
        {"10.6.1.1", 5128581, "New York", "US", 40.7128, -74.0060},
        {"10.7.1.1", 1850147, "Tokyo", "JP", 35.6762, 139.6503},
        {"10.8.1.1", 3448439, "S\xc3\xa3o Paulo", "BR", -23.5505, -46.6333},
        {"10.9.1.1", 2147714, "Sydney", "AU", -33.8688, 151.2093},
        {"10.10.1.1", 184745, "Nairobi", "KE", -1.2921, 36.8219},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        geo_place_t p;
        assert_int_equal(geo_lookup_ip(*state, cases[i].ip, &p), 0);
        assert_string_equal(p.source, "ip");
        assert_int_equal(p.city_id, cases[i].id);
        assert_string_equal(p.city, cases[i].city);
        assert_string_equal(p.country, cases[i].country);
        assert_int_equal(p.has_coords, 1);
        assert_near(p.lat, cases[i].lat, 1e-9);
        assert_near(p.lon, cases[i].lon, 1e-9);
    }
}

static void test_lookup_utf8_name_bytes(void **state)
{
    geo_place_t p;
    assert_int_equal(geo_lookup_ip(*state, "10.8.0.1", &p), 0);
    /* "São Paulo" as UTF-8: ã is C3 A3, not double-encoded. */
    assert_int_equal(strlen(p.city), 10);
    assert_memory_equal(p.city, "S\xc3\xa3o Paulo", 10);
}

static void test_lookup_ipv6(void **state)
{
    geo_place_t p;

    assert_int_equal(geo_lookup_ip(*state, "2001:db8:1::1", &p), 0);
    assert_string_equal(p.source, "ip");
    assert_int_equal(p.city_id, 2988507);
    assert_string_equal(p.city, "Paris");
    assert_string_equal(p.country, "FR");
    assert_near(p.lat, 48.8566, 1e-9);
    assert_near(p.lon, 2.3522, 1e-9);

    assert_int_equal(geo_lookup_ip(*state, "2001:DB8:4:ffff:ffff:ffff:ffff:ffff", &p), 0);
    assert_int_equal(p.city_id, 2950159);
    assert_string_equal(p.city, "Berlin");
    assert_string_equal(p.country, "DE");

    assert_int_equal(geo_lookup_ip(*state, "2001:db8:6:0:0:0:0:42", &p), 0);
    assert_int_equal(p.city_id, 5128581);
    assert_string_equal(p.city, "New York");
    assert_string_equal(p.country, "US");
    assert_near(p.lon, -74.0060, 1e-9);
}

static void test_lookup_ipv4_mapped(void **state)
{
    geo_place_t p;
    /* The database aliases ::ffff:0:0/96 to its IPv4 subtree. */
    assert_int_equal(geo_lookup_ip(*state, "::ffff:10.7.3.4", &p), 0);
    assert_int_equal(p.city_id, 1850147);
    assert_string_equal(p.city, "Tokyo");
}

static void test_lookup_country_only(void **state)
{
    geo_place_t p;
    assert_int_equal(geo_lookup_ip(*state, "10.20.3.4", &p), 0);
    assert_string_equal(p.source, "ip");
    assert_int_equal(p.city_id, 0);
    assert_string_equal(p.city, "");
    assert_string_equal(p.country, "FR");
    assert_int_equal(p.has_coords, 1);
    assert_near(p.lat, 46.2276, 1e-9);
    assert_near(p.lon, 2.2137, 1e-9);
}

static void assert_unknown(const geo_place_t *p)
{
    assert_string_equal(p->source, "unknown");
    assert_int_equal(p->city_id, 0);
    assert_string_equal(p->city, "");
    assert_string_equal(p->country, "");
    assert_int_equal(p->has_coords, 0);
}

static void test_lookup_not_found(void **state)
{
    static const char *const ips[] = {"10.11.0.1",     "10.0.255.255", "192.0.2.1", "8.8.8.8",
                                      "2001:db8:2::1", "2001:db8::1",  "::1",       "2a00::1"};
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        geo_place_t p;
        /* Poison `out` to see that a miss clears what was there. */
        memset(&p, 0x55, sizeof(p));
        assert_int_equal(geo_lookup_ip(*state, ips[i], &p), GEO_ERR_NOT_FOUND);
        assert_unknown(&p);
    }
}

static void test_lookup_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        "not an ip",
        "10.1",
        "10.1.0.1 ",
        " 10.1.0.1",
        "10.1.0.256",
        "10.1.0.1/16",
        "10.1.0.1:80",
        "2001:db8:1::1::1",
        "2001:db8:1::g",
        "fe80::1%eth0",
        "0x0a.1.0.1",
        "localhost",
    };
    geo_place_t p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&p, 0x55, sizeof(p));
        assert_int_equal(geo_lookup_ip(*state, bad[i], &p), GEO_ERR_ADDRESS);
        assert_unknown(&p);
    }
    assert_int_equal(geo_lookup_ip(*state, NULL, &p), GEO_ERR_ADDRESS);
    assert_unknown(&p);
}

/* ---- opening ---- */

static void test_lookup_db_null(void **state)
{
    geo_place_t p;
    memset(&p, 0x55, sizeof(p));
    assert_int_equal(geo_lookup_ip(NULL, "10.1.0.1", &p), GEO_ERR_NOT_FOUND);
    assert_unknown(&p);
    assert_int_equal(geo_lookup_ip(NULL, "garbage", &p), GEO_ERR_ADDRESS);
    assert_unknown(&p);
    geo_db_close(NULL); /* accepted */
}

static void test_open_missing_file(void **state)
{
    char why[256] = "x";
    int err = 0;
    assert_null(geo_db_open("/nonexistent/nearchat/geo.mmdb", &err, why, sizeof(why)));
    assert_int_equal(err, GEO_ERR_OPEN);
    assert_non_null(strstr(why, "/nonexistent/nearchat/geo.mmdb"));
    assert_non_null(strstr(why, "No such file"));

    err = 0;
    assert_null(geo_db_open("", &err, NULL, 0)); /* no `why` buffer is fine */
    assert_int_equal(err, GEO_ERR_OPEN);
    assert_null(geo_db_open(NULL, NULL, NULL, 0));
}

/* Writes `len` bytes to a new temporary file; its name goes into `path`. */
static void write_temp(char *path, size_t pathlen, const void *data, size_t len)
{
    snprintf(path, pathlen, "/tmp/test_geo-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void test_open_not_mmdb(void **state)
{
    static const char text[] = "network,geoname_id,city,country,latitude,longitude\n"
                               "10.1.0.0/16,2988507,Paris,FR,48.8566,2.3522\n";
    char path[64], why[256] = "";
    int err = 0;

    write_temp(path, sizeof(path), text, sizeof(text) - 1);
    assert_null(geo_db_open(path, &err, why, sizeof(why)));
    assert_int_equal(err, GEO_ERR_OPEN);
    assert_non_null(strstr(why, path));
    assert_int_equal(unlink(path), 0);

    write_temp(path, sizeof(path), "", 0); /* empty */
    err = 0;
    assert_null(geo_db_open(path, &err, why, sizeof(why)));
    assert_int_equal(err, GEO_ERR_OPEN);
    assert_int_equal(unlink(path), 0);
}

static void test_strerror(void **state)
{
    static const int codes[] = {0, GEO_ERR_OPEN, GEO_ERR_ADDRESS, GEO_ERR_NOT_FOUND, GEO_ERR_CIDR, -1, 12345};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_non_null(geo_strerror(codes[i]));
        assert_true(geo_strerror(codes[i])[0] != '\0');
    }
    assert_string_not_equal(geo_strerror(GEO_ERR_OPEN), geo_strerror(GEO_ERR_CIDR));
}

/* ---- trusted proxies ---- */

static geo_proxies_t *parse_ok(const char *list)
{
    char why[128] = "x";
    int err = 1;
    geo_proxies_t *p = geo_proxies_parse(list, &err, why, sizeof(why));
    assert_non_null(p);
    assert_int_equal(err, 0);
    assert_string_equal(why, "");
    return p;
}

static void test_proxies_parse_good(void **state)
{
    geo_proxies_t *p = parse_ok("10.0.0.0/8, 192.168.1.0/24 ,\t172.16.0.0/12,::1/128");
    assert_true(geo_proxies_contains(p, "10.0.0.1"));
    assert_true(geo_proxies_contains(p, "10.255.255.255"));
    assert_false(geo_proxies_contains(p, "11.0.0.1"));
    assert_true(geo_proxies_contains(p, "192.168.1.77"));
    assert_false(geo_proxies_contains(p, "192.168.2.1"));
    assert_true(geo_proxies_contains(p, "172.31.255.255"));
    assert_false(geo_proxies_contains(p, "172.32.0.0"));
    assert_true(geo_proxies_contains(p, "::1"));
    assert_false(geo_proxies_contains(p, "::2"));
    /* An IPv4-mapped peer matches the IPv4 CIDRs. */
    assert_true(geo_proxies_contains(p, "::ffff:10.0.0.1"));
    assert_true(geo_proxies_contains(p, "::FFFF:192.168.1.1"));
    assert_false(geo_proxies_contains(p, "::ffff:11.0.0.1"));
    /* ...but an IPv4 CIDR does not match unrelated IPv6. */
    assert_false(geo_proxies_contains(p, "::a00:1"));
    /* Text that is no address is never trusted. */
    assert_false(geo_proxies_contains(p, "10.0.0.1 "));
    assert_false(geo_proxies_contains(p, "garbage"));
    assert_false(geo_proxies_contains(p, NULL));
    assert_false(geo_proxies_contains(NULL, "10.0.0.1"));
    geo_proxies_free(p);
    geo_proxies_free(NULL);
}

static void test_proxies_parse_odd_prefixes(void **state)
{
    geo_proxies_t *p = parse_ok("10.128.0.0/9,192.0.2.7/31,10.1.2.3/8");
    assert_true(geo_proxies_contains(p, "10.200.0.1"));
    assert_true(geo_proxies_contains(p, "192.0.2.6"));
    assert_true(geo_proxies_contains(p, "192.0.2.7"));
    assert_false(geo_proxies_contains(p, "192.0.2.8"));
    /* Host bits after the prefix are ignored: 10.1.2.3/8 is 10.0.0.0/8. */
    assert_true(geo_proxies_contains(p, "10.99.0.1"));
    geo_proxies_free(p);
}

static void test_proxies_parse_bad(void **state)
{
    static const char *const bad[] = {
        "10.0.0.0/33",
        "10.0.0.0/",
        "/8",
        "10.0.0/8",
        "10.0.0.0/8/8",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "10.0.0.0/ 8",
        "10.0.0.0 /8x",
        "::1/129",
        "2001:db8::/1000",
        "10.0.0.0/8, example.com",
        "10.0.0.0/8, 10.0.0.0/8 10.1.0.0/16",
        "fe80::1%eth0/64",
        "10.0.0.0/8, 0000000000000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[128] = "";
        int err = 0;
        assert_null(geo_proxies_parse(bad[i], &err, why, sizeof(why)));
        assert_int_equal(err, GEO_ERR_CIDR);
        assert_non_null(strstr(why, "malformed CIDR"));
    }
    /* `why` names the offending entry, trimmed. */
    char why[128] = "";
    int err = 0;
    assert_null(geo_proxies_parse("10.0.0.0/8,  10.300.0.0/16 , ::1", &err, why, sizeof(why)));
    assert_non_null(strstr(why, "\"10.300.0.0/16\""));
    /* A small `why` is truncated, and NULL `err`/`why` are accepted. */
    char tiny[8];
    assert_null(geo_proxies_parse("bogus", &err, tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_null(geo_proxies_parse("bogus", NULL, NULL, 0));
}

static void test_proxies_parse_empty(void **state)
{
    static const char *const empty[] = {"", " ", " \t ", ",", " , ,"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        geo_proxies_t *p = parse_ok(empty[i]);
        assert_false(geo_proxies_contains(p, "10.0.0.1"));
        assert_false(geo_proxies_contains(p, "::1"));
        geo_proxies_free(p);
    }
    geo_proxies_t *p = parse_ok(NULL);
    assert_false(geo_proxies_contains(p, "127.0.0.1"));
    geo_proxies_free(p);
    /* Empty entries between good ones are skipped. */
    p = parse_ok("10.0.0.0/8,,192.0.2.1,");
    assert_true(geo_proxies_contains(p, "192.0.2.1"));
    geo_proxies_free(p);
}

static void test_proxies_parse_ipv6(void **state)
{
    geo_proxies_t *p = parse_ok("2001:db8:abcd::/48, fd00::/8, 2001:DB8:0:1::/127");
    assert_true(geo_proxies_contains(p, "2001:db8:abcd::1"));
    assert_true(geo_proxies_contains(p, "2001:db8:abcd:ffff:ffff:ffff:ffff:ffff"));
    assert_false(geo_proxies_contains(p, "2001:db8:abce::1"));
    assert_true(geo_proxies_contains(p, "fd12:3456::1"));
    assert_false(geo_proxies_contains(p, "fe00::1"));
    assert_true(geo_proxies_contains(p, "2001:db8:0:1::1"));
    assert_false(geo_proxies_contains(p, "2001:db8:0:1::2"));
    assert_false(geo_proxies_contains(p, "10.0.0.1"));
    geo_proxies_free(p);

    /* An IPv6 CIDR over the IPv4-mapped range covers IPv4 peers too. */
    p = parse_ok("::ffff:10.0.0.0/104");
    assert_true(geo_proxies_contains(p, "10.1.2.3"));
    assert_false(geo_proxies_contains(p, "11.1.2.3"));
    geo_proxies_free(p);
}

static void test_proxies_parse_bare_address(void **state)
{
    geo_proxies_t *p = parse_ok("192.0.2.7, 2001:db8::7");
    assert_true(geo_proxies_contains(p, "192.0.2.7"));
    assert_false(geo_proxies_contains(p, "192.0.2.6"));
    assert_false(geo_proxies_contains(p, "192.0.2.8"));
    assert_true(geo_proxies_contains(p, "2001:db8::7"));
    assert_true(geo_proxies_contains(p, "2001:db8:0:0:0:0:0:7")); /* same address, other spelling */
    assert_false(geo_proxies_contains(p, "2001:db8::6"));
    geo_proxies_free(p);
}

static void test_proxies_parse_zero_prefix(void **state)
{
    geo_proxies_t *p = parse_ok("0.0.0.0/0");
    assert_true(geo_proxies_contains(p, "0.0.0.0"));
    assert_true(geo_proxies_contains(p, "255.255.255.255"));
    assert_true(geo_proxies_contains(p, "203.0.113.9"));
    assert_false(geo_proxies_contains(p, "2001:db8::1")); /* IPv4 /0 is all of IPv4 only */
    geo_proxies_free(p);

    p = parse_ok("::/0");
    assert_true(geo_proxies_contains(p, "2001:db8::1"));
    assert_true(geo_proxies_contains(p, "::"));
    assert_true(geo_proxies_contains(p, "203.0.113.9")); /* IPv4-mapped is inside ::/0 */
    geo_proxies_free(p);
}

/* ---- client address ---- */

static void client_ip(const char *proxies, const char *peer, const char *xff, const char *want)
{
    geo_proxies_t *p = parse_ok(proxies);
    char out[46];
    memset(out, 'x', sizeof(out));
    geo_client_ip(p, peer, xff, out, sizeof(out));
    assert_string_equal(out, want);
    geo_proxies_free(p);
}

static void test_client_ip_untrusted_peer(void **state)
{
    client_ip("10.0.0.0/8", "203.0.113.5", "198.51.100.1", "203.0.113.5");
    client_ip("", "10.0.0.1", "198.51.100.1", "10.0.0.1");
    client_ip("10.0.0.0/8", "203.0.113.5", NULL, "203.0.113.5");
    char out[46];
    geo_client_ip(NULL, "203.0.113.5", "198.51.100.1", out, sizeof(out));
    assert_string_equal(out, "203.0.113.5");
}

static void test_client_ip_trusted_peer(void **state)
{
    client_ip("10.0.0.0/8", "10.0.0.1", "198.51.100.1", "198.51.100.1");
    /* The rightmost untrusted entry wins; what the client wrote to the left is ignored. */
    client_ip("10.0.0.0/8", "10.0.0.1", "1.2.3.4, 198.51.100.1", "198.51.100.1");
    client_ip("10.0.0.0/8", "10.0.0.1", NULL, "10.0.0.1");
    client_ip("10.0.0.0/8", "10.0.0.1", "", "10.0.0.1");
}

static void test_client_ip_several_trusted_hops(void **state)
{
    client_ip("10.0.0.0/8, 192.168.0.0/16", "10.0.0.1", "1.2.3.4, 198.51.100.1, 192.168.5.5, 10.9.9.9", "198.51.100.1");
    client_ip("10.0.0.0/8, 192.168.0.0/16", "192.168.0.1", "198.51.100.1,10.1.1.1,10.2.2.2", "198.51.100.1");
}

static void test_client_ip_all_trusted(void **state)
{
    /* Every entry is trusted: the leftmost, whatever it is, is all we know. */
    client_ip("10.0.0.0/8", "10.0.0.1", "10.3.3.3, 10.2.2.2, 10.1.1.1", "10.3.3.3");
    client_ip("10.0.0.0/8", "10.0.0.1", "10.1.1.1", "10.1.1.1");
}

static void test_client_ip_spaces(void **state)
{
    client_ip("10.0.0.0/8", "10.0.0.1", "  198.51.100.1  ,\t10.1.1.1 ", "198.51.100.1");
    client_ip("10.0.0.0/8", "10.0.0.1", "1.1.1.1,198.51.100.2 ", "198.51.100.2");
}

static void test_client_ip_malformed(void **state)
{
    /* A malformed rightmost entry: the peer is kept. */
    client_ip("10.0.0.0/8", "10.0.0.1", "garbage", "10.0.0.1");
    client_ip("10.0.0.0/8", "10.0.0.1", "198.51.100.1:99999", "10.0.0.1"); /* no port */
    client_ip("10.0.0.0/8", "10.0.0.1", "198.51.100.1:", "10.0.0.1");
    client_ip("10.0.0.0/8", "10.0.0.1", "fe80::1%eth0", "10.0.0.1"); /* zones are not taken */
    /* An empty element is skipped (RFC 7230 7), not malformed. */
    client_ip("10.0.0.0/8", "10.0.0.1", "198.51.100.1,", "198.51.100.1");
    client_ip("10.0.0.0/8", "10.0.0.1", ", ,", "10.0.0.1");
    /* A malformed entry behind trusted hops: the last good (trusted) one is kept. */
    client_ip("10.0.0.0/8", "10.0.0.1", "198.51.100.1, unknown, 10.1.1.1", "10.1.1.1");
    client_ip("10.0.0.0/8", "10.0.0.1", "198.51.100.1,,10.1.1.1", "198.51.100.1");
    /* Malformed entries left of the client do not matter. */
    client_ip("10.0.0.0/8", "10.0.0.1", "<script>, 198.51.100.1, 10.1.1.1", "198.51.100.1");
    /* Far too long to be an address. */
    client_ip("10.0.0.0/8", "10.0.0.1",
              "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111",
              "10.0.0.1");
}

static void test_client_ip_ipv6(void **state)
{
    client_ip("2001:db8:ffff::/48", "2001:db8:ffff::1", "2001:db8:1::42, 2001:db8:ffff::2", "2001:db8:1::42");
    client_ip("10.0.0.0/8", "::ffff:10.0.0.1", "2001:db8:4::1", "2001:db8:4::1"); /* mapped peer */
    client_ip("::1", "::1", "198.51.100.1", "198.51.100.1");
    client_ip("2001:db8:ffff::/48", "2001:db8:1::1", "198.51.100.1", "2001:db8:1::1");
    client_ip("::/0", "2001:db8::1", "0000:0000:0000:0000:0000:ffff:255.255.255.255", /* longest form, 45 */
              "0000:0000:0000:0000:0000:ffff:255.255.255.255");
}

static void test_client_ip_small_out(void **state)
{
    char out[8];
    geo_client_ip(NULL, "203.0.113.5", NULL, out, sizeof(out));
    assert_string_equal(out, "203.0.1");              /* truncated, still terminated */
    geo_client_ip(NULL, "203.0.113.5", NULL, out, 0); /* nothing written, no crash */
    geo_client_ip(NULL, NULL, NULL, out, sizeof(out));
    assert_string_equal(out, "");
}

/* ---- every X-Forwarded-For line ---- */

/* geo_client_ip_lines over `n` lines, each copied into a buffer of exactly its
 * length (no NUL), so that ASan sees any read past a value. */
static void client_ip_lines(const char *proxies, const char *peer, size_t n, const char *const *text, const char *want)
{
    geo_proxies_t *p = parse_ok(proxies);
    const char *lines[24];
    size_t lens[24];
    char out[46];

    assert_true(n <= 24);
    for (size_t i = 0; i < n; i++) {
        lens[i] = text[i] != NULL ? strlen(text[i]) : 0;
        char *copy = text[i] != NULL ? malloc(lens[i] > 0 ? lens[i] : 1) : NULL;
        if (copy != NULL)
            memcpy(copy, text[i], lens[i]);
        lines[i] = copy;
    }
    memset(out, 'x', sizeof(out));
    geo_client_ip_lines(p, peer, lines, lens, n, out, sizeof(out));
    assert_string_equal(out, want);
    for (size_t i = 0; i < n; i++)
        free((char *)lines[i]);
    geo_proxies_free(p);
}

static void test_client_ip_lines_several(void **state)
{
    /* HAProxy's option forwardfor adds its own line after the client's: the
     * proxy's line is the right end of the list, the client's is ignored. */
    const char *two[] = {"203.0.113.9", "198.51.100.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, two, "198.51.100.1");
    const char *three[] = {"1.2.3.4", "198.51.100.1, 10.1.1.1", "10.2.2.2"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 3, three, "198.51.100.1");
    /* Trusted hops span lines: the walk goes on into the line before. */
    const char *spans[] = {"5.5.5.5, 198.51.100.7", "10.1.1.1", " 10.2.2.2 ,10.3.3.3"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 3, spans, "198.51.100.7");
    /* An empty list of lines: the peer. */
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 0, NULL, "10.0.0.1");
}

static void test_client_ip_lines_padded(void **state)
{
    /* 10 KB of forged entries in the client's line (and a single line too):
     * nothing is cut, the proxy's entry at the right end still decides. */
    size_t cap = 10 * 1024 + 64, len = 0;
    char *pad = malloc(cap);
    while (len < 10 * 1024) {
        memcpy(pad + len, "203.0.113.9, ", 13);
        len += 13;
    }
    memcpy(pad + len, "203.0.113.9", 12);
    const char *lines[] = {pad, "198.51.100.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, lines, "198.51.100.1");
    memcpy(pad + len, "198.51.100.2", 13);
    const char *one[] = {pad};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 1, one, "198.51.100.2");
    client_ip("10.0.0.0/8", "10.0.0.1", pad, "198.51.100.2");
    /* Padding with spaces, or one huge entry, is malformed at worst. */
    memset(pad, ' ', len);
    memcpy(pad + len, "198.51.100.3", 13);
    client_ip("10.0.0.0/8", "10.0.0.1", pad, "198.51.100.3");
    memset(pad, '1', len);
    const char *huge[] = {pad, "10.1.1.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, huge, "10.1.1.1");
    free(pad);
}

static void test_client_ip_lines_all_trusted(void **state)
{
    const char *chain[] = {"10.3.3.3", "10.2.2.2", "10.1.1.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 3, chain, "10.3.3.3");
    /* The hop bound: past GEO_XFF_MAX_HOPS trusted entries, the leftmost
     * examined is taken, and what lies further left is never read. */
    char text[24][24];
    const char *many[24];
    for (unsigned i = 0; i < 24; i++) {
        snprintf(text[i], sizeof(text[i]), "10.0.0.%u", i);
        many[i] = text[i];
    }
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 24, many, "10.0.0.8"); /* 24 - 16 */
    client_ip_lines("10.0.0.0/8", "10.0.0.1", GEO_XFF_MAX_HOPS, many, "10.0.0.0");
}

static void test_client_ip_lines_malformed(void **state)
{
    /* A malformed entry ends the walk: the last good address is kept. */
    const char *bad[] = {"198.51.100.1", "garbage", "10.1.1.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 3, bad, "10.1.1.1");
    /* Empty elements are skipped, not malformed (RFC 7230 7): a line of
     * them, or one between entries. */
    const char *empty[] = {"198.51.100.1", "", "10.1.1.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 3, empty, "198.51.100.1");
    const char *blanks[] = {"198.51.100.1, , \t,10.2.2.2,", " ,10.1.1.1"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, blanks, "198.51.100.1");
    const char *only[] = {" , ", ""};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, only, "10.0.0.1");
    const char *last[] = {"198.51.100.1", "10.1.1.1, nope"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, last, "10.0.0.1");
    const char *absent[] = {"198.51.100.1", NULL};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, absent, "10.0.0.1");
    /* A NUL inside an entry (h2o refuses it; the function must not rely on
     * that) is malformed, not cut to "1.2.3.4". */
    geo_proxies_t *p = parse_ok("10.0.0.0/8");
    const char *nul[] = {"198.51.100.1\0junk"};
    size_t nul_len[] = {17};
    char out[46];
    geo_client_ip_lines(p, "10.0.0.1", nul, nul_len, 1, out, sizeof(out));
    assert_string_equal(out, "10.0.0.1");
    geo_proxies_free(p);
    const char *ports[] = {"[2001:db8::1]:99999", "[::1", "1.2.3.4:", "[1.2.3.4]", "[2001:db8::1]x", "a:b"};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        client_ip_lines("10.0.0.0/8", "10.0.0.1", 1, &ports[i], "10.0.0.1");
}

static void test_client_ip_lines_ipv6_and_ports(void **state)
{
    const char *v6[] = {"2001:db8:1::42", "2001:db8:ffff::2"};
    client_ip_lines("2001:db8:ffff::/48", "2001:db8:ffff::1", 2, v6, "2001:db8:1::42");
    const char *bracketed[] = {" [2001:db8:1::42]:443 ", "[2001:db8:ffff::2]"};
    client_ip_lines("2001:db8:ffff::/48", "2001:db8:ffff::1", 2, bracketed, "2001:db8:1::42");
    const char *v4port[] = {"198.51.100.1:5678", "10.1.1.1:80"};
    client_ip_lines("10.0.0.0/8", "10.0.0.1", 2, v4port, "198.51.100.1");
    const char *mixed[] = {"[2001:db8:4::1]", "::ffff:10.2.2.2"}; /* mapped trusted hop */
    client_ip_lines("10.0.0.0/8", "::ffff:10.0.0.1", 2, mixed, "2001:db8:4::1");
}

static void test_client_ip_lines_untrusted_peer(void **state)
{
    /* A peer that is no trusted proxy: every line is the client's own word. */
    const char *lines[] = {"10.1.1.1", "198.51.100.1"};
    client_ip_lines("10.0.0.0/8", "203.0.113.5", 2, lines, "203.0.113.5");
    client_ip_lines("", "10.0.0.1", 2, lines, "10.0.0.1");
    char out[46];
    size_t lens[] = {8, 12};
    geo_client_ip_lines(NULL, "203.0.113.5", lines, lens, 2, out, sizeof(out));
    assert_string_equal(out, "203.0.113.5");
    geo_client_ip_lines(NULL, "203.0.113.5", lines, lens, 2, out, 0); /* nothing written */
}

/* ---- device locations ---- */

static geo_place_t ip_place(void)
{
    geo_place_t p = {
        .city_id = 2988507, .city = "Paris", .country = "FR", .has_coords = 1, .lat = 1, .lon = 2, .source = "ip"};
    return p;
}

static void test_device_valid(void **state)
{
    geo_place_t p = ip_place();
    assert_int_equal(geo_apply_device(48.856613, 2.352222, &p), 0);
    assert_string_equal(p.source, "device");
    assert_int_equal(p.has_coords, 1);
    assert_near(p.lat, 48.86, 1e-9);
    assert_near(p.lon, 2.35, 1e-9);
    /* City and country stay as the IP lookup left them. */
    assert_int_equal(p.city_id, 2988507);
    assert_string_equal(p.city, "Paris");
    assert_string_equal(p.country, "FR");

    assert_int_equal(geo_apply_device(-23.5505, -46.6333, &p), 0);
    assert_near(p.lat, -23.55, 1e-9);
    assert_near(p.lon, -46.63, 1e-9);
    assert_int_equal(geo_apply_device(-33.868820, 151.209296, &p), 0);
    assert_near(p.lat, -33.87, 1e-9);
    assert_near(p.lon, 151.21, 1e-9);

    /* Limits are inside the range. */
    assert_int_equal(geo_apply_device(90, 180, &p), 0);
    assert_near(p.lat, 90, 0);
    assert_near(p.lon, 180, 0);
    assert_int_equal(geo_apply_device(-90, -180, &p), 0);
    assert_near(p.lat, -90, 0);
    assert_near(p.lon, -180, 0);

    /* Tiny negatives round to +0, not -0. */
    assert_int_equal(geo_apply_device(-0.001, -0.004, &p), 0);
    assert_true(p.lat == 0 && !signbit(p.lat));
    assert_true(p.lon == 0 && !signbit(p.lon));
}

static void test_device_invalid(void **state)
{
    static const double bad[][2] = {
        {90.0001, 0}, {-90.0001, 0}, {0, 180.0001}, {0, -180.0001}, {1000, 1000},
        {NAN, 0},     {0, NAN},      {INFINITY, 0}, {0, -INFINITY}, {-INFINITY, INFINITY},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        geo_place_t p = ip_place();
        geo_place_t before = p;
        assert_int_equal(geo_apply_device(bad[i][0], bad[i][1], &p), -1);
        assert_memory_equal(&p, &before, sizeof(p)); /* untouched */
    }
    assert_int_equal(geo_apply_device(1, 2, NULL), -1);
}

/* ---- distances ---- */

static void test_distance(void **state)
{
    double d = geo_distance_km(48.8566, 2.3522, 48.8049, 2.1204); /* Paris - Versailles */
    assert_true(d > 17.0 && d < 19.0);
    d = geo_distance_km(48.8566, 2.3522, 52.5200, 13.4050); /* Paris - Berlin */
    assert_near(d, 878, 3);
    assert_near(geo_distance_km(52.52, 13.405, 48.8566, 2.3522), d, 1e-9); /* symmetric */
    assert_near(geo_distance_km(48.8566, 2.3522, 48.8566, 2.3522), 0, 1e-9);
    assert_near(geo_distance_km(-33.8688, 151.2093, -33.8688, 151.2093), 0, 1e-9);
    /* Antipodes: half the circumference, pi * 6371.0088. */
    assert_near(geo_distance_km(0, 0, 0, 180), 20015.1, 0.1);
    assert_near(geo_distance_km(90, 0, -90, 0), 20015.1, 0.1);
    assert_near(geo_distance_km(48.8566, 2.3522, -48.8566, -177.6478), 20015.1, 0.1);
    /* Across the antimeridian. */
    assert_near(geo_distance_km(0, 179.5, 0, -179.5), 111.2, 0.1);
    assert_true(isnan(geo_distance_km(NAN, 0, 0, 0)));
}

int main(void)
{
    const struct CMUnitTest db_tests[] = {
        cmocka_unit_test(test_lookup_ipv4_cities),  cmocka_unit_test(test_lookup_utf8_name_bytes),
        cmocka_unit_test(test_lookup_ipv6),         cmocka_unit_test(test_lookup_ipv4_mapped),
        cmocka_unit_test(test_lookup_country_only), cmocka_unit_test(test_lookup_not_found),
        cmocka_unit_test(test_lookup_garbage),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_db_null),
        cmocka_unit_test(test_open_missing_file),
        cmocka_unit_test(test_open_not_mmdb),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_proxies_parse_good),
        cmocka_unit_test(test_proxies_parse_odd_prefixes),
        cmocka_unit_test(test_proxies_parse_bad),
        cmocka_unit_test(test_proxies_parse_empty),
        cmocka_unit_test(test_proxies_parse_ipv6),
        cmocka_unit_test(test_proxies_parse_bare_address),
        cmocka_unit_test(test_proxies_parse_zero_prefix),
        cmocka_unit_test(test_client_ip_untrusted_peer),
        cmocka_unit_test(test_client_ip_trusted_peer),
        cmocka_unit_test(test_client_ip_several_trusted_hops),
        cmocka_unit_test(test_client_ip_all_trusted),
        cmocka_unit_test(test_client_ip_spaces),
        cmocka_unit_test(test_client_ip_malformed),
        cmocka_unit_test(test_client_ip_ipv6),
        cmocka_unit_test(test_client_ip_small_out),
        cmocka_unit_test(test_client_ip_lines_several),
        cmocka_unit_test(test_client_ip_lines_padded),
        cmocka_unit_test(test_client_ip_lines_all_trusted),
        cmocka_unit_test(test_client_ip_lines_malformed),
        cmocka_unit_test(test_client_ip_lines_ipv6_and_ports),
        cmocka_unit_test(test_client_ip_lines_untrusted_peer),
        cmocka_unit_test(test_device_valid),
        cmocka_unit_test(test_device_invalid),
        cmocka_unit_test(test_distance),
    };
    int failed = cmocka_run_group_tests_name("geo lookups", db_tests, db_group_setup, db_group_teardown);
    failed += cmocka_run_group_tests_name("geo", tests, NULL, NULL);
    return failed != 0;
}
