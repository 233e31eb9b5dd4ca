/*
 * limits: a bounded table of per-key counters and token buckets, split in
 * shards behind their own mutexes so that workers rarely wait for each
 * other. Each shard is a fixed array of entries (allocated once, so it can
 * never grow), chained hash buckets over it with a keyed hash (SipHash-1-3
 * with a random key: a client that picks its IPv6 addresses cannot make one
 * long chain), and an LRU list that eviction walks from its cold end.
 */
#include "limits.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../buf/buf.h"
#include "../metrics/metrics.h"

#define SHARDS 16
/* Entries looked at from the LRU's cold end for an idle one to reuse. */
#define EVICT_PROBE 16
#define NIL (-1)

typedef struct bucket {
    double tokens;
    uint64_t at_ms; /* 0: never used, full */
} bucket_t;

typedef struct entry {
    char key[LIMITS_KEY_MAX];
    uint64_t hash;
    uint32_t conns;
    bucket_t b[LIMITS_NBUCKETS];
    int32_t next;               /* hash chain, or the free list */
    int32_t lru_prev, lru_next; /* lru_prev toward the most recently used */
} entry_t;

typedef struct shard {
    pthread_mutex_t mu;
    entry_t *e;      /* cap entries, then the fallback at index cap */
    int32_t *heads;  /* nheads chains */
    uint32_t nheads; /* a power of two */
    uint32_t count;
    int32_t free_head;
    int32_t lru_head, lru_tail; /* most and least recently used */
} shard_t;

struct limits {
    limits_config_t cfg;
    uint64_t k0, k1; /* the hash key */
    uint32_t cap;    /* entries per shard, the fallback excluded */
    metrics_value_t *fallbacks;
    shard_t shards[SHARDS];
};

/* ---- the hash ---- */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                                       \
    do {                                                                                                               \
        v0 += v1;                                                                                                      \
        v1 = rotl(v1, 13);                                                                                             \
        v1 ^= v0;                                                                                                      \
        v0 = rotl(v0, 32);                                                                                             \
        v2 += v3;                                                                                                      \
        v3 = rotl(v3, 16);                                                                                             \
        v3 ^= v2;                                                                                                      \
        v0 += v3;                                                                                                      \
        v3 = rotl(v3, 21);                                                                                             \
        v3 ^= v0;                                                                                                      \
        v2 += v1;                                                                                                      \
        v1 = rotl(v1, 17);                                                                                             \
        v1 ^= v2;                                                                                                      \
        v2 = rotl(v2, 32);                                                                                             \
    } while (0)

/* SipHash-1-3 of `len` bytes under the key (k0, k1). Never fails. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const char *p, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t m = 0;
        for (int j = 0; j < 8; j++)
            m |= (uint64_t)(uint8_t)p[i + (size_t)j] << (8 * j);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (int j = 0; i + (size_t)j < len; j++)
        last |= (uint64_t)(uint8_t)p[i + (size_t)j] << (8 * j);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- buckets ---- */

static int rate_on(const int rate[2])
{
    return rate[0] > 0 && rate[1] > 0;
}

/* The tokens the bucket holds at `now_ms` (refilled, capped). */
static double bucket_level(const bucket_t *b, const int rate[2], uint64_t now_ms)
{
    double cap = rate[0];
    if (b->at_ms == 0)
        return cap;
    uint64_t elapsed = now_ms > b->at_ms ? now_ms - b->at_ms : 0; /* workers' clocks may be a turn apart */
    return fmin(cap, b->tokens + (double)elapsed * ((double)rate[0] / (rate[1] * 1000.0)));
}

static int bucket_take(bucket_t *b, const int rate[2], uint64_t now_ms)
{
    double level = bucket_level(b, rate, now_ms);
    if (now_ms > b->at_ms || b->at_ms == 0)
        b->at_ms = now_ms != 0 ? now_ms : 1; /* 0 means "never used" */
    b->tokens = level;
    if (b->tokens < 1)
        return 0;
    b->tokens -= 1;
    return 1;
}

/* An entry that can be given to another key: nothing open, nothing to remember. */
static int entry_idle(const limits_t *l, const entry_t *e, uint64_t now_ms)
{
    if (e->conns != 0)
        return 0;
    for (int i = 0; i < LIMITS_NBUCKETS; i++)
        if (rate_on(l->cfg.rate[i]) && bucket_level(&e->b[i], l->cfg.rate[i], now_ms) < l->cfg.rate[i][0])
            return 0;
    return 1;
}

/* ---- the shard's lists ---- */

static void lru_unlink(shard_t *s, int32_t i)
{
    entry_t *e = &s->e[i];
    if (e->lru_prev != NIL)
        s->e[e->lru_prev].lru_next = e->lru_next;
    else
        s->lru_head = e->lru_next;
    if (e->lru_next != NIL)
        s->e[e->lru_next].lru_prev = e->lru_prev;
    else
        s->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NIL;
}

static void lru_push(shard_t *s, int32_t i)
{
    entry_t *e = &s->e[i];
    e->lru_prev = NIL;
    e->lru_next = s->lru_head;
    if (s->lru_head != NIL)
        s->e[s->lru_head].lru_prev = i;
    s->lru_head = i;
    if (s->lru_tail == NIL)
        s->lru_tail = i;
}

static void chain_unlink(shard_t *s, int32_t i)
{
    for (int32_t *pp = &s->heads[s->e[i].hash & (s->nheads - 1)]; *pp != NIL; pp = &s->e[*pp].next)
        if (*pp == i) {
            *pp = s->e[i].next;
            return;
        }
}

/*
 * The index of `key`'s entry in shard `s` (locked), made if missing: from
 * the free list, else in place of an idle entry near the LRU's cold end,
 * else the shard's fallback (index l->cap). Never fails.
 */
static int32_t shard_find(limits_t *l, shard_t *s, const char *key, uint64_t hash, uint64_t now_ms)
{
    int32_t *head = &s->heads[hash & (s->nheads - 1)];
    for (int32_t i = *head; i != NIL; i = s->e[i].next)
        if (s->e[i].hash == hash && strcmp(s->e[i].key, key) == 0) {
            if (s->lru_head != i) {
                lru_unlink(s, i);
                lru_push(s, i);
            }
            return i;
        }
    int32_t i = s->free_head;
    if (i != NIL) {
        s->free_head = s->e[i].next;
        s->count++;
    } else {
        int probe = 0;
        for (i = s->lru_tail; i != NIL && probe < EVICT_PROBE; i = s->e[i].lru_prev, probe++)
            if (entry_idle(l, &s->e[i], now_ms))
                break;
        if (i == NIL || probe == EVICT_PROBE) {
            metrics_inc(l->fallbacks);
            return (int32_t)l->cap;
        }
        chain_unlink(s, i);
        lru_unlink(s, i);
    }
    entry_t *e = &s->e[i];
    memset(e, 0, sizeof(*e));
    buf_copy_str(e->key, sizeof(e->key), key);
    e->hash = hash;
    e->next = *head;
    *head = i;
    lru_push(s, i);
    return i;
}

/* The shard of `key` (cut to LIMITS_KEY_MAX into `k`) and its hash. */
static shard_t *shard_of(limits_t *l, const char *key, char k[LIMITS_KEY_MAX], uint64_t *hash)
{
    buf_copy_str(k, LIMITS_KEY_MAX, key);
    *hash = siphash13(l->k0, l->k1, k, strlen(k));
    return &l->shards[*hash >> 60]; /* the chains use the low bits */
}

/* ---- public ---- */

static metrics_value_t *refusal_series(limits_limit_t which);

limits_t *limits_new(const limits_config_t *cfg)
{
    limits_t *l = buf_xcalloc(1, sizeof(*l));
    l->cfg = *cfg;
    size_t cap = cfg->max_entries / SHARDS;
    if (cap < 1)
        cap = 1;
    if (cap > INT32_MAX / 2)
        cap = INT32_MAX / 2;
    l->cap = (uint32_t)cap;
    uint64_t k[2];
    if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k))
        abort(); /* the kernel's CSPRNG cannot fail once seeded */
    l->k0 = k[0];
    l->k1 = k[1];
    char labels[64];
    snprintf(labels, sizeof(labels), "table=\"%s\"", cfg->name != NULL ? cfg->name : "other");
    l->fallbacks = metrics_counter("chatd_limit_table_full_total", labels,
                                   "Lookups of a new key that found the limits table full of busy keys");
    for (int i = 0; i < LIMITS_NLIMITS; i++)
        (void)refusal_series((limits_limit_t)i); /* every series shows, at 0, from the start */
    for (int si = 0; si < SHARDS; si++) {
        shard_t *s = &l->shards[si];
        pthread_mutex_init(&s->mu, NULL);
        s->e = buf_xcalloc(cap + 1, sizeof(entry_t));
        s->nheads = 1;
        while (s->nheads < cap)
            s->nheads <<= 1;
        s->heads = buf_xcalloc(s->nheads, sizeof(int32_t));
        for (uint32_t h = 0; h < s->nheads; h++)
            s->heads[h] = NIL;
        for (uint32_t i = 0; i < cap; i++)
            s->e[i].next = i + 1 < cap ? (int32_t)(i + 1) : NIL;
        s->free_head = 0;
        s->lru_head = s->lru_tail = NIL;
        entry_t *fb = &s->e[cap];
        fb->next = fb->lru_prev = fb->lru_next = NIL;
    }
    return l;
}

void limits_free(limits_t *l)
{
    if (l == NULL)
        return;
    for (int si = 0; si < SHARDS; si++) {
        pthread_mutex_destroy(&l->shards[si].mu);
        free(l->shards[si].e);
        free(l->shards[si].heads);
    }
    free(l);
}

int limits_acquire(limits_t *l, const char *key, uint64_t now_ms)
{
    if (l->cfg.max_conns == 0)
        return LIMITS_UNCOUNTED;
    char k[LIMITS_KEY_MAX];
    uint64_t hash;
    shard_t *s = shard_of(l, key, k, &hash);
    pthread_mutex_lock(&s->mu);
    int32_t i = shard_find(l, s, k, hash, now_ms);
    entry_t *e = &s->e[i];
    int slot;
    /* the fallback is shared by unrelated keys: bounding it would refuse them all together */
    if ((uint32_t)i != l->cap && e->conns >= l->cfg.max_conns) {
        slot = LIMITS_REFUSED;
    } else {
        e->conns++;
        slot = (int)((size_t)(s - l->shards) * (l->cap + 1) + (size_t)i);
    }
    pthread_mutex_unlock(&s->mu);
    return slot;
}

void limits_release(limits_t *l, int slot)
{
    if (l == NULL || slot < 0)
        return;
    size_t si = (size_t)slot / (l->cap + 1), i = (size_t)slot % (l->cap + 1);
    if (si >= SHARDS)
        return;
    shard_t *s = &l->shards[si];
    pthread_mutex_lock(&s->mu);
    /* an entry with connections is never evicted, so the slot still names its key */
    if (s->e[i].conns > 0)
        s->e[i].conns--;
    pthread_mutex_unlock(&s->mu);
}

int limits_enabled(const limits_t *l, int bucket)
{
    return l != NULL && bucket >= 0 && bucket < LIMITS_NBUCKETS && rate_on(l->cfg.rate[bucket]);
}

int limits_take(limits_t *l, const char *key, int bucket, uint64_t now_ms)
{
    if (!limits_enabled(l, bucket))
        return 1;
    char k[LIMITS_KEY_MAX];
    uint64_t hash;
    shard_t *s = shard_of(l, key, k, &hash);
    pthread_mutex_lock(&s->mu);
    int32_t i = shard_find(l, s, k, hash, now_ms);
    int ok = bucket_take(&s->e[i].b[bucket], l->cfg.rate[bucket], now_ms);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

size_t limits_size(limits_t *l)
{
    size_t n = 0;
    for (int si = 0; si < SHARDS; si++) {
        pthread_mutex_lock(&l->shards[si].mu);
        n += l->shards[si].count;
        pthread_mutex_unlock(&l->shards[si].mu);
    }
    return n;
}

/* The series of one limit's refusals, made on first use. Never fails. */
static metrics_value_t *refusal_series(limits_limit_t which)
{
    static const char *const labels[LIMITS_NLIMITS] = {"limit=\"conn_ip\"", "limit=\"handshake_ip\"",
                                                       "limit=\"guest_ip\"", "limit=\"conn_guest\""};
    static metrics_value_t *_Atomic series[LIMITS_NLIMITS];
    metrics_value_t *m = atomic_load(&series[which]);
    if (m == NULL) { /* metrics_counter returns the same series to every thread that races here */
        m = metrics_counter("chatd_limit_refusals_total", labels[which],
                            "Connections, handshakes and guests refused by a per-address or per-guest limit");
        atomic_store(&series[which], m);
    }
    return m;
}

void limits_count_refusal(limits_limit_t which)
{
    if ((int)which >= 0 && which < LIMITS_NLIMITS)
        metrics_inc(refusal_series(which));
}
