/*
 * matcher: who is matched with whom. The state lives in Redis and changes
 * only through one Lua script (matcher.lua, compiled in), so that any number
 * of chatd nodes can request, accept, decline and cancel at once without a
 * guest ever being paired twice. This side turns calls into EVALSHA commands
 * on a worker's redis client and their replies into results.
 *
 * Notifications (proposal, session, expired, withdrawn...) do not come back
 * through these calls: the script publishes them on the worker channel of
 * the guest they concern; match_parse_event reads them.
 */
#ifndef NEARCHAT_MATCHER_H
#define NEARCHAT_MATCHER_H
#include <stdbool.h>
#include <stdint.h>

#include "../server/redis/redis.h"

/* Levels of a pair and of a search, narrowest first. */
typedef enum { MATCH_CITY = 0, MATCH_NEARBY = 1, MATCH_COUNTRY = 2, MATCH_ANY = 3 } match_level_t;

typedef struct match_config {
    int nearby_km;                  /* radius of "nearby" */
    int proposal_ms;                /* how long a proposal waits for an answer */
    int widen_ms[3];                /* after this long waiting: nearby, country, any */
    int ttl_s;                      /* never-again lists and sessions live as long as tokens */
    int session_ttl_s;              /* a session ends ("expired") this long after it began */
    int location_ttl_s;             /* a guest's location expires unless its worker refreshes it */
    int rate_guest_n, rate_guest_s; /* match:request bucket per guest: n per s seconds */
    int rate_ip_n, rate_ip_s;       /* ... per client IP */
} match_config_t;

/** The script, with its SHA; initialised by match_init. */
extern redis_script_t match_script;
/** Computes the script's SHA. Call once before any worker starts. */
void match_init(void);

/** "city", "nearby", "country", "any". */
const char *match_level_name(int level);
/** Parses a scope of match:request ("city", "country", "any"); -1 for anything else. */
int match_parse_scope(const char *s);

/** The script's operations that answer (match_result_t). */
typedef enum match_op {
    MATCH_OP_HELLO,
    MATCH_OP_REQUEST,
    MATCH_OP_WIDEN,
    MATCH_OP_ACCEPT,
    MATCH_OP_DECLINE,
    MATCH_OP_EXPIRE,
    MATCH_OP_CANCEL,
} match_op_t;

/** A city and a country code as the matcher keeps them ("" when unknown). */
typedef struct match_place {
    const char *city, *country;
} match_place_t;

/*
 * What a call answered. Strings are never NULL ("" when not given) and are
 * borrowed for the callback.
 */
typedef struct match_result {
    const char *err; /* NULL, a protocol error code ("already_queued", "unknown_proposal", ...), or "unavailable" */
    /* "ok", or what else the matcher said: hello "banned" or "session"; widen
     * "not_waiting"; expire "gone" or "early"; cancel "other_connection" */
    const char *status;
    int stage, scope; /* request: where the search starts and how far it may widen; widen: the stage now */
    /* hello "session": the live session the guest comes back to; accept: the session begun */
    const char *sid;
    int64_t started;
    const char *alias;                             /* hello: the peer's alias */
    match_place_t peer;                            /* hello: where the peer is */
    bool has_distance;                             /* hello */
    double distance_km;                            /* hello, rounded by the caller */
    const char *requester;                         /* accept: the guest who asked first */
    match_place_t requester_place, accepter_place; /* accept */
} match_result_t;
typedef void (*match_cb)(const match_result_t *r, void *ud);

/** The typed answer of `op` from the script's strings (what each call's callback gets). */
void match_result_of(match_op_t op, const redis_strings_t *s, match_result_t *out);

/** Where a guest is, as the matcher stores it. Strings may be empty. */
typedef struct match_guest {
    const char *guest_id, *ip, *channel, *conn;
    char city_id[16], city[96], country[4], lat[24], lon[24];
} match_guest_t;

/*
 * Each call returns 0 and later calls `cb` once, or REDIS_CLIENT_ERR_DOWN at
 * once (without calling it) when Redis is not connected.
 */

/** Registers where a guest is; the reply is "banned", "ok", or "session" sid alias city country distance started. */
int match_hello(redis_client_t *c, const match_config_t *cfg, const match_guest_t *g, match_cb cb, void *ud);
/** match:request; the reply is "ok" stage scope. */
int match_request(redis_client_t *c, const match_config_t *cfg, const char *guest_id, const char *ip, int scope,
                  double max_km, match_cb cb, void *ud);
/** Widens a waiting guest's search to `stage`; the reply is "ok" stage waited_ms scope, or "not_waiting". */
int match_widen(redis_client_t *c, const match_config_t *cfg, const char *guest_id, int stage, match_cb cb, void *ud);
/**
 * match:accept; makes the session with the two aliases (what each side will
 * see of the other). The reply is "ok" sid requester requester_city
 * requester_country accepter_city accepter_country started_ms.
 */
int match_accept(redis_client_t *c, const match_config_t *cfg, const char *guest_id, const char *proposal_id,
                 match_cb cb, void *ud);
int match_decline(redis_client_t *c, const match_config_t *cfg, const char *guest_id, const char *proposal_id,
                  match_cb cb, void *ud);
/** A proposal's time is up (called by the workers of both sides; the first call wins). */
int match_expire(redis_client_t *c, const match_config_t *cfg, const char *proposal_id, match_cb cb, void *ud);
/**
 * Stops a guest's waiting. With `conn` (not NULL), only while that connection
 * is still the guest's; with `gone`, its location is dropped too.
 */
int match_cancel(redis_client_t *c, const match_config_t *cfg, const char *guest_id, const char *conn, int gone,
                 match_cb cb, void *ud);
/** Refreshes the TTL of a guest's location (fire and forget). */
int match_touch(redis_client_t *c, const match_config_t *cfg, const char *guest_id);

/*
 * Liveness, so that the peers of guests on a node that died hear they went.
 * A worker records the guests it holds under its channel (held 1 when one
 * connects, 0 when its last connection there goes; fire and forget).
 */
int match_held(redis_client_t *c, const char *channel, const char *guest_id, int held);
/**
 * The beat of the worker of `channel` (unique per process), which also takes
 * up to `max` guests of workers that have not beaten for `dead_ms` and whose
 * locations still point there. The reply is an array: "new" (this worker was
 * not known: it starts, or it was taken for dead) or "ok", then guest id and
 * connection id pairs, each to be cancelled with that connection
 * (match_cancel, gone) and its peer told.
 */
int match_reap(redis_client_t *c, const char *channel, int dead_ms, int max, redis_reply_cb cb, void *ud);

#endif
