/*
 * limits: counters and token buckets per key (a client address, a guest
 * id), shared by every worker of a node. One table is bounded: it never
 * holds more than its configured number of entries, and a new key takes the
 * place of an idle one (no connection open, every bucket full) only. When
 * every entry is busy, new keys share one fallback entry per shard, so a
 * flood of new addresses can never reset the bucket of an address already
 * counted.
 *
 * Thread-safety: every function may be called from any thread; the table
 * is split into shards, each behind its own mutex, held for a lookup only.
 * Each node counts alone: in a cluster the limits are per node.
 */
#ifndef NEARCHAT_LIMITS_H
#define NEARCHAT_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct limits limits_t;

/* The token buckets each entry has (rates in limits_config_t). */
enum limits_bucket { LIMITS_HANDSHAKE, LIMITS_GUEST, LIMITS_CHAT, LIMITS_NBUCKETS };

/* The limits whose refusals are counted in /metrics (a fixed label set). */
typedef enum limits_limit {
    LIMITS_CONN_IP,      /* limit="conn_ip": open Engine.IO sessions per address */
    LIMITS_HANDSHAKE_IP, /* limit="handshake_ip": new Engine.IO sessions per address and time */
    LIMITS_GUEST_IP,     /* limit="guest_ip": new guests per address and time */
    LIMITS_CONN_GUEST,   /* limit="conn_guest": connections of one guest id */
    LIMITS_NLIMITS
} limits_limit_t;

/* Keys longer than this are cut (they are addresses and guest ids: never that long). */
#define LIMITS_KEY_MAX 64
/* The bound of a node's tables when nothing else is configured. */
#define LIMITS_DEFAULT_ENTRIES 65536

typedef struct limits_config {
    const char *name;             /* static: the table's label in /metrics ("ip", "guest") */
    size_t max_entries;           /* the bound; at least one entry per shard is kept */
    unsigned max_conns;           /* limits_acquire's bound per key; 0: unlimited (nothing counted) */
    int rate[LIMITS_NBUCKETS][2]; /* "count per seconds"; a 0 in either disables that bucket */
} limits_config_t;

/* What limits_acquire returns besides a slot (>= 0). */
enum {
    LIMITS_UNCOUNTED = -1, /* no bound configured: nothing was counted, nothing to release */
    LIMITS_REFUSED = -2,   /* the key is at its bound */
};

/** A table for `cfg` (copied). Out of memory aborts; never returns NULL. */
limits_t *limits_new(const limits_config_t *cfg);

/** Frees the table; NULL is accepted. No other thread may use it any more. */
void limits_free(limits_t *l);

/**
 * Counts one more open connection of `key`. Returns a slot (>= 0) that the
 * caller must hand to limits_release exactly once, LIMITS_UNCOUNTED when no
 * bound is configured, or LIMITS_REFUSED when the key already has max_conns.
 * Keys that only found the fallback entry are counted but never refused.
 */
int limits_acquire(limits_t *l, const char *key, uint64_t now_ms);

/** Uncounts the connection of a slot from limits_acquire; a negative slot is ignored. Never fails. */
void limits_release(limits_t *l, int slot);

/**
 * Takes one token from `key`'s bucket `bucket`. Returns 1 when it had one
 * (or the bucket is disabled), 0 when it is empty. `now_ms` is a monotonic
 * clock (now_mono_ms); a time before the bucket's last use counts as no
 * time passing.
 */
int limits_take(limits_t *l, const char *key, int bucket, uint64_t now_ms);

/** 1 when bucket `bucket` is configured (a take can refuse). */
int limits_enabled(const limits_t *l, int bucket);

/** The number of keys the table holds now (the fallbacks not included). */
size_t limits_size(limits_t *l);

/** Counts a refusal in chatd_limit_refusals_total{limit=...}. Any thread; never fails. */
void limits_count_refusal(limits_limit_t which);

#endif
