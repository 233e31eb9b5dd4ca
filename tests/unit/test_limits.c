/* Unit tests for server/limits: buckets, connection bounds, the table's bound and its fallback. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "limits/limits.c"

static limits_config_t config(size_t max_entries, unsigned max_conns, int count, int seconds)
{
    limits_config_t c = {.name = "test", .max_entries = max_entries, .max_conns = max_conns};
    for (int i = 0; i < LIMITS_NBUCKETS; i++) {
        c.rate[i][0] = count;
        c.rate[i][1] = seconds;
    }
    return c;
}

static void addr(char *out, size_t len, unsigned i)
{
    snprintf(out, len, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

static void test_bucket_refills(void **state)
{
    limits_config_t c = config(1024, 0, 3, 10);
    limits_t *l = limits_new(&c);
    uint64_t t = 1000;
    for (int i = 0; i < 3; i++)
        assert_true(limits_take(l, "192.0.2.1", LIMITS_CHAT, t));
    assert_false(limits_take(l, "192.0.2.1", LIMITS_CHAT, t));
    assert_true(limits_take(l, "192.0.2.1", LIMITS_GUEST, t)); /* each bucket is its own */
    assert_false(limits_take(l, "192.0.2.1", LIMITS_CHAT, t + 3000));
    assert_true(limits_take(l, "192.0.2.1", LIMITS_CHAT, t + 3400)); /* 3 per 10 s: one every 3.33 s */
    assert_false(limits_take(l, "192.0.2.1", LIMITS_CHAT, t + 3400));
    /* a clock a little behind (another worker's) gives nothing back and breaks nothing */
    assert_false(limits_take(l, "192.0.2.1", LIMITS_CHAT, t));
    assert_true(limits_take(l, "192.0.2.1", LIMITS_CHAT, t + 60000));
    assert_int_equal(limits_size(l), 1);
    limits_free(l);
}

static void test_disabled_counts_nothing(void **state)
{
    limits_config_t c = config(1024, 0, 0, 1);
    limits_t *l = limits_new(&c);
    for (int i = 0; i < 1000; i++) {
        assert_true(limits_take(l, "192.0.2.1", LIMITS_HANDSHAKE, 5));
        assert_int_equal(limits_acquire(l, "192.0.2.1", 5), LIMITS_UNCOUNTED);
    }
    assert_false(limits_enabled(l, LIMITS_HANDSHAKE));
    assert_int_equal(limits_size(l), 0);
    limits_release(l, LIMITS_UNCOUNTED); /* ignored */
    limits_free(l);
}

static void test_connections_bounded_per_key(void **state)
{
    limits_config_t c = config(1024, 2, 0, 1);
    limits_t *l = limits_new(&c);
    int a = limits_acquire(l, "192.0.2.1", 1), b = limits_acquire(l, "192.0.2.1", 1);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(a, b); /* one entry per key */
    assert_int_equal(limits_acquire(l, "192.0.2.1", 1), LIMITS_REFUSED);
    int other = limits_acquire(l, "192.0.2.2", 1); /* another address is not touched */
    assert_true(other >= 0);
    limits_release(l, a);
    int again = limits_acquire(l, "192.0.2.1", 1);
    assert_true(again >= 0);
    assert_int_equal(limits_acquire(l, "192.0.2.1", 1), LIMITS_REFUSED);
    limits_release(l, b);
    limits_release(l, again);
    limits_release(l, other);
    limits_free(l);
}

/* The old per-worker table (hub/chatting.c): FNV-1a of the address, 1,024 direct-mapped slots. */
static unsigned old_slot(const char *ip)
{
    uint32_t h = 2166136261u;
    for (const char *p = ip; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % 1024;
}

static void test_colliding_address_does_not_reset_a_bucket(void **state)
{
    char a[32] = "198.51.100.7", b[32] = "";
    for (unsigned i = 1; b[0] == '\0'; i++) {
        char x[32];
        addr(x, sizeof(x), i);
        if (old_slot(x) == old_slot(a))
            memcpy(b, x, sizeof(b));
    }
    limits_config_t c = config(1024, 0, 2, 60);
    limits_t *l = limits_new(&c);
    assert_true(limits_take(l, a, LIMITS_CHAT, 100));
    assert_true(limits_take(l, a, LIMITS_CHAT, 100));
    assert_false(limits_take(l, a, LIMITS_CHAT, 100));
    assert_true(limits_take(l, b, LIMITS_CHAT, 100));  /* b has its own, full bucket */
    assert_false(limits_take(l, a, LIMITS_CHAT, 101)); /* and a stays exhausted */
    limits_free(l);
}

/* A million distinct addresses: the table stays at its bound, and busy entries keep their state. */
static void test_bounded_and_busy_entries_survive(void **state)
{
    limits_config_t c = config(1024, 4, 2, 60);
    limits_t *l = limits_new(&c);
    size_t max = (size_t)l->cap * SHARDS;
    assert_true(max <= 1024);
    const char *victim = "198.51.100.7";
    assert_true(limits_take(l, victim, LIMITS_CHAT, 100));
    assert_true(limits_take(l, victim, LIMITS_CHAT, 100));
    assert_false(limits_take(l, victim, LIMITS_CHAT, 100));
    char x[32];
    for (unsigned i = 0; i < 1000000; i++) {
        addr(x, sizeof(x), i);
        limits_take(l, x, LIMITS_CHAT, 100 + i / 1000);
        if (i % 997 == 0)
            assert_true(limits_size(l) <= max);
    }
    assert_int_equal(limits_size(l), max);
    assert_false(limits_take(l, victim, LIMITS_CHAT, 1100)); /* not reset by a million newcomers */
    /* the newcomers that found no room shared the fallbacks: those are exhausted too */
    assert_false(limits_take(l, "203.0.113.250", LIMITS_CHAT, 1100));

    /* once buckets are full again (idle), new addresses get entries of their own */
    uint64_t later = 1100 + 61000;
    assert_true(limits_take(l, "203.0.113.251", LIMITS_CHAT, later));
    assert_true(limits_take(l, "203.0.113.251", LIMITS_CHAT, later));
    assert_false(limits_take(l, "203.0.113.251", LIMITS_CHAT, later));
    assert_true(limits_take(l, "203.0.113.252", LIMITS_CHAT, later));
    assert_int_equal(limits_size(l), max);

    /* entries with connections open are never reused, however idle their buckets */
    int held[64];
    for (int i = 0; i < 64; i++) {
        addr(x, sizeof(x), 5000000 + (unsigned)i);
        held[i] = limits_acquire(l, x, later);
        assert_true(held[i] >= 0);
    }
    for (unsigned i = 0; i < 100000; i++) {
        addr(x, sizeof(x), 6000000 + i);
        limits_take(l, x, LIMITS_HANDSHAKE, later + 120000 + i);
    }
    for (int i = 0; i < 64; i++) {
        addr(x, sizeof(x), 5000000 + (unsigned)i);
        int slot = held[i];
        size_t si = (size_t)slot / (l->cap + 1), ei = (size_t)slot % (l->cap + 1);
        if (ei != l->cap) /* it had its own entry: still its own */
            assert_string_equal(l->shards[si].e[ei].key, x);
        limits_release(l, slot);
    }
    assert_int_equal(limits_size(l), max);
    limits_free(l);
}

/* A table full of open connections: newcomers are counted in the fallback and never refused there. */
static void test_full_of_connections_falls_back(void **state)
{
    limits_config_t c = config(32, 1, 0, 1);
    limits_t *l = limits_new(&c);
    size_t max = (size_t)l->cap * SHARDS;
    enum { N = 4096 };
    static int slots[N];
    char x[32];
    int fallback = 0;
    for (unsigned i = 0; i < N; i++) {
        addr(x, sizeof(x), i);
        slots[i] = limits_acquire(l, x, 1);
        assert_true(slots[i] >= 0);
        fallback += (size_t)slots[i] % (l->cap + 1) == l->cap;
    }
    assert_int_equal(limits_size(l), max);
    assert_int_equal(fallback, N - (int)max);
    for (unsigned i = 0; i < N; i++)
        limits_release(l, slots[i]);
    for (int si = 0; si < SHARDS; si++)
        for (uint32_t i = 0; i <= l->cap; i++)
            assert_int_equal(l->shards[si].e[i].conns, 0);
    limits_free(l);
}

static limits_t *shared;

static void *hammer(void *arg)
{
    char x[32];
    for (unsigned i = 0; i < 20000; i++) {
        addr(x, sizeof(x), i % 97);
        int s = limits_acquire(shared, x, i);
        if (s >= 0)
            limits_release(shared, s);
        limits_take(shared, x, LIMITS_HANDSHAKE, i);
    }
    return NULL;
}

static void test_threads(void **state)
{
    limits_config_t c = config(64, 3, 5, 1);
    shared = limits_new(&c);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int si = 0; si < SHARDS; si++)
        for (uint32_t i = 0; i <= shared->cap; i++)
            assert_int_equal(shared->shards[si].e[i].conns, 0);
    limits_free(shared);
}

static void test_refusals_are_counted(void **state)
{
    limits_config_t c = config(16, 1, 1, 1);
    limits_t *l = limits_new(&c);
    buf_t out = BUF_INIT;
    metrics_render(&out);
    assert_non_null(strstr(out.base, "chatd_limit_refusals_total{limit=\"conn_guest\"} 0"));
    buf_free(&out);
    limits_count_refusal(LIMITS_CONN_GUEST);
    limits_count_refusal(LIMITS_NLIMITS); /* not a limit: ignored */
    metrics_render(&out);
    assert_non_null(strstr(out.base, "chatd_limit_refusals_total{limit=\"conn_guest\"} 1"));
    assert_non_null(strstr(out.base, "chatd_limit_refusals_total{limit=\"handshake_ip\"} 0"));
    buf_free(&out);
    limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_refills),
        cmocka_unit_test(test_disabled_counts_nothing),
        cmocka_unit_test(test_connections_bounded_per_key),
        cmocka_unit_test(test_colliding_address_does_not_reset_a_bucket),
        cmocka_unit_test(test_bounded_and_busy_entries_survive),
        cmocka_unit_test(test_full_of_connections_falls_back),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_refusals_are_counted),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    metrics_free_all();
    return rc;
}
