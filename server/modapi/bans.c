/*
 * Bans through the API: kept in Redis where the workers look for them
 * ({nc}:ban:g:<id> and {nc}:ban:ip:<ip> with the ban's TTL, checked by the
 * matcher's hello; CIDRs in {nc}:bancidr as "expiresAtMs|cidr"), listed in
 * {nc}:bans, and announced on nc:bans so that every worker closes what they
 * cover within a second. Runs on the API threads, with a synchronous
 * hiredis connection per thread.
 */
#include <arpa/inet.h>
#include <hiredis.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../geo/geo.h"
#include "../guest/guest.h"
#include "../keys/keys.h"
#include "../log/log.h"
#include "internal.h"
#include "../now/now.h"

#define MAX_TTL_S (365L * 86400)
#define MAX_REASON 500

static __thread redisContext *tl_redis;

void modapi_redis_close(void)
{
    if (tl_redis != NULL)
        redisFree(tl_redis);
    tl_redis = NULL;
}

/* This thread's connection, made or re-made as needed; NULL when Redis is down. */
static redisContext *conn(modapi_t *m)
{
    if (tl_redis != NULL && tl_redis->err == 0)
        return tl_redis;
    modapi_redis_close();
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(m->redis.host, m->redis.port, tv);
    if (c == NULL || c->err != 0) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (m->redis.password[0] != '\0')
        r = redisCommand(c, "AUTH %s", m->redis.password);
    freeReplyObject(r);
    r = redisCommand(c, "SELECT %d", m->redis.db);
    int ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    tl_redis = c;
    return c;
}

static int valid_ip_or_cidr(const char *s, int *is_cidr)
{
    unsigned char buf[16];
    *is_cidr = strchr(s, '/') != NULL;
    if (!*is_cidr)
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
    int err = 0;
    char why[64];
    geo_proxies_t *p = geo_proxies_parse(s, &err, why, sizeof(why));
    geo_proxies_free(p);
    return p != NULL && strchr(s, ',') == NULL;
}

/* Runs a MULTI ... EXEC of already appended commands; 0 or -1. */
static int exec_all(redisContext *c, int n)
{
    int rc = 0;
    for (int i = 0; i < n + 2; i++) { /* MULTI, the commands, EXEC */
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            rc = -1;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(r);
    }
    return rc;
}

/*
 * Copies what a ban covers into the call's audit entry; its target is the
 * guest id, else the address (a ban of both is found by its guest id, and
 * its info shows the address). Borrows `ban`; never fails.
 */
static void audit_ban(api_call_t *call, json_t *ban)
{
    static const char *const keys[] = {"banId", "guestId", "ip", "reason", "expiresAt", "moderator"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(ban, keys[i]);
        if (v != NULL)
            json_object_set(call->info, i == 5 ? "bannedBy" : keys[i], v);
    }
    const char *gid = json_string_value(json_object_get(ban, "guestId"));
    modapi_set_target(call, gid != NULL ? gid : json_string_value(json_object_get(ban, "ip")));
}

void modapi_ban_create(api_call_t *call)
{
    modapi_t *m = call->api;
    const buf_t *body = sio_http_body(call->req);
    json_error_t jerr;
    json_t *in = json_loadb(body->base != NULL ? body->base : "", body->len, 0, &jerr);
    const char *gid = json_string_value(json_object_get(in, "guestId"));
    const char *ip = json_string_value(json_object_get(in, "ip"));
    const char *reason = json_string_value(json_object_get(in, "reason"));
    json_t *jttl = json_object_get(in, "ttlSeconds");
    int is_cidr = 0;
    const char *problem = NULL;
    if (!json_is_object(in))
        problem = "the body must be a JSON object";
    else if (gid == NULL && ip == NULL)
        problem = "a ban needs guestId or ip";
    else if (json_object_get(in, "guestId") != NULL && (gid == NULL || !guest_id_valid(gid)))
        problem = "guestId must be a guest id";
    else if (json_object_get(in, "ip") != NULL && (ip == NULL || !valid_ip_or_cidr(ip, &is_cidr)))
        problem = "ip must be an IPv4 or IPv6 address or CIDR";
    else if (reason == NULL || reason[0] == '\0' || strlen(reason) > MAX_REASON)
        problem = "reason must be a string of 1 to 500 bytes";
    else if (!json_is_integer(jttl) || json_integer_value(jttl) < 1 || json_integer_value(jttl) > MAX_TTL_S)
        problem = "ttlSeconds must be an integer from 1 to 31536000";
    if (problem != NULL) {
        modapi_reply_error(call, 400, "invalid_parameter", problem);
        json_decref(in);
        return;
    }
    long long ttl = json_integer_value(jttl);
    /* one spelling per address: the key the matcher checks is built from the
     * client's canonical address (2001:DB8::1 and ::ffff:10.0.0.1 included) */
    char canon[GEO_CANONICAL_MAX];
    if (ip != NULL && geo_addr_canonical(ip, canon, sizeof(canon)) == 0)
        ip = canon;
    char ban_id[GUEST_ID_LEN + 1];
    guest_new_id(ban_id);
    int64_t created = now_wall_ms(), expires = created + ttl * 1000;
    json_t *ban = json_pack("{s:s,s:o,s:o,s:s,s:I,s:I,s:s}", "banId", ban_id, "guestId",
                            gid != NULL ? json_string(gid) : json_null(), "ip",
                            ip != NULL ? json_string(ip) : json_null(), "reason", reason, "createdAt",
                            (json_int_t)created, "expiresAt", (json_int_t)expires, "moderator", call->who);
    json_decref(in);
    /* from here on, the ban's own copies: `in` is gone */
    gid = json_string_value(json_object_get(ban, "guestId"));
    ip = json_string_value(json_object_get(ban, "ip"));
    audit_ban(call, ban);
    json_object_set_new(call->info, "ttlSeconds", json_integer(ttl));
    redisContext *c = conn(m);
    if (c == NULL) {
        json_decref(ban);
        modapi_reply_error(call, 503, "unavailable", "Redis is unavailable");
        return;
    }
    char *text = json_dumps(ban, JSON_COMPACT);
    int n = 1;
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "HSET %s %s %s", keys_name(KEYS_BANS, NULL).s, ban_id, text);
    if (gid != NULL) {
        redisAppendCommand(c, "SET %s %s EX %lld", keys_name(KEYS_BAN_GUEST, gid).s, ban_id, ttl);
        n++;
    }
    if (ip != NULL && !is_cidr) {
        redisAppendCommand(c, "SET %s %s EX %lld", keys_name(KEYS_BAN_IP, ip).s, ban_id, ttl);
        n++;
    } else if (ip != NULL) {
        char v[128];
        snprintf(v, sizeof(v), "%lld|%s", (long long)expires, ip);
        redisAppendCommand(c, "HSET %s %s %s", keys_name(KEYS_BAN_CIDRS, NULL).s, ban_id, v);
        n++;
    }
    redisAppendCommand(c, "EXEC");
    int rc = exec_all(c, n);
    if (rc == 0) {
        redisReply *r = redisCommand(c, "PUBLISH nc:bans %s", text);
        rc = r == NULL ? -1 : 0;
        freeReplyObject(r);
    }
    free(text);
    if (rc != 0) {
        json_decref(ban);
        modapi_redis_close();
        modapi_reply_error(call, 503, "unavailable", "Redis is unavailable");
        return;
    }
    modapi_reply_json(call, 201, ban);
}

/* A signed offset into the bans list: "<offset>.<mac>". */
static void cursor_make(modapi_t *m, long offset, char *out, size_t outlen)
{
    char pos[32];
    snprintf(pos, sizeof(pos), "bans:%ld", offset);
    unsigned char md[32];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), m->cursor_key, (int)m->cursor_keylen, (const unsigned char *)pos, strlen(pos), md, &mdlen);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(out, outlen, "%ld.%s", offset, hex);
}

static long cursor_read(modapi_t *m, const char *cursor)
{
    char *end;
    long off = strtol(cursor, &end, 10);
    if (end == cursor || *end != '.' || off < 0)
        return -1;
    char again[64];
    cursor_make(m, off, again, sizeof(again));
    return strlen(again) == strlen(cursor) && CRYPTO_memcmp(again, cursor, strlen(again)) == 0 ? off : -1;
}

static int by_created_desc(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "createdAt"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "createdAt"));
    return x < y ? 1 : x > y ? -1 : 0;
}

void modapi_ban_list(api_call_t *call)
{
    modapi_t *m = call->api;
    long long limit;
    if (modapi_int_param(call, "limit", 100, 1, 500, &limit) != 0)
        return;
    char *cursor = modapi_query_param(sio_http_query(call->req), "cursor");
    long offset = cursor != NULL ? cursor_read(m, cursor) : 0;
    free(cursor);
    if (offset < 0) {
        modapi_reply_error(call, 400, "invalid_cursor", "the cursor does not belong to this query");
        return;
    }
    redisContext *c = conn(m);
    redisReply *r = c != NULL ? redisCommand(c, "HVALS %s", keys_name(KEYS_BANS, NULL).s) : NULL;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        modapi_redis_close();
        modapi_reply_error(call, 503, "unavailable", "Redis is unavailable");
        return;
    }
    int64_t now = now_wall_ms();
    json_t **live = buf_xcalloc(r->elements + 1, sizeof(*live));
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        json_error_t jerr;
        json_t *b = r->element[i]->type == REDIS_REPLY_STRING ? json_loads(r->element[i]->str, 0, &jerr) : NULL;
        if (b != NULL && json_integer_value(json_object_get(b, "expiresAt")) > now)
            live[n++] = b;
        else
            json_decref(b);
    }
    freeReplyObject(r);
    qsort(live, n, sizeof(*live), by_created_desc);
    json_t *items = json_array();
    for (size_t i = (size_t)offset; i < n && i < (size_t)offset + (size_t)limit; i++)
        json_array_append(items, live[i]);
    char next[64];
    int more = (size_t)offset + (size_t)limit < n;
    if (more)
        cursor_make(m, offset + (long)limit, next, sizeof(next));
    for (size_t i = 0; i < n; i++)
        json_decref(live[i]);
    free(live);
    modapi_reply_json(call, 200,
                      json_pack("{s:o,s:o}", "items", items, "nextCursor", more ? json_string(next) : json_null()));
}

void modapi_ban_lift(api_call_t *call, const char *ban_id)
{
    modapi_t *m = call->api;
    redisContext *c = conn(m);
    redisReply *r = c != NULL ? redisCommand(c, "HGET %s %s", keys_name(KEYS_BANS, NULL).s, ban_id) : NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        modapi_redis_close();
        modapi_reply_error(call, 503, "unavailable", "Redis is unavailable");
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        modapi_reply_error(call, 404, "not_found", "no such ban");
        return;
    }
    json_error_t jerr;
    json_t *ban = json_loads(r->str, 0, &jerr);
    freeReplyObject(r);
    json_object_set_new(call->info, "banId", json_string(ban_id));
    audit_ban(call, ban);
    const char *gid = json_string_value(json_object_get(ban, "guestId"));
    const char *ip = json_string_value(json_object_get(ban, "ip"));
    int n = 2;
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "HDEL %s %s", keys_name(KEYS_BANS, NULL).s, ban_id);
    redisAppendCommand(c, "HDEL %s %s", keys_name(KEYS_BAN_CIDRS, NULL).s, ban_id);
    if (gid != NULL) {
        redisAppendCommand(c, "DEL %s", keys_name(KEYS_BAN_GUEST, gid).s);
        n++;
    }
    if (ip != NULL && strchr(ip, '/') == NULL) {
        redisAppendCommand(c, "DEL %s", keys_name(KEYS_BAN_IP, ip).s);
        n++;
    }
    redisAppendCommand(c, "EXEC");
    int rc = exec_all(c, n);
    json_decref(ban);
    if (rc == 0) {
        redisReply *p = redisCommand(c, "PUBLISH nc:bans {\"banId\":\"%s\",\"lifted\":true}", ban_id);
        freeReplyObject(p);
    }
    if (rc != 0) {
        modapi_redis_close();
        modapi_reply_error(call, 503, "unavailable", "Redis is unavailable");
        return;
    }
    buf_t empty = BUF_INIT;
    call->status = 204;
    sio_http_respond(call->req, 204, "application/json", &empty);
    call->req = NULL;
}
