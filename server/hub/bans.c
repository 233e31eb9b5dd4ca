/*
 * Bans, as every worker enforces them. Moderators write bans into Redis
 * (guest id and exact IP keys that the matcher's hello checks, and CIDRs in
 * {nc}:bancidr) and publish them on HUB_BANS_CHANNEL; every worker of every
 * node is subscribed, closes the live connections the ban covers (their
 * disconnect withdraws any waiting request or open proposal), and keeps the
 * CIDR list in memory to refuse new CONNECTs from those networks.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../log/log.h"
#include "../keys/keys.h"
#include "internal.h"
#include "../now/now.h"

/* A new CIDR list replaces the old one; NULL or empty means none. */
static void set_cidrs(hub_worker_t *hw, const char *list)
{
    int err = 0;
    char why[128];
    geo_proxies_t *p = geo_proxies_parse(list, &err, why, sizeof(why));
    if (p == NULL) {
        log_warn("unusable CIDR ban list ignored", json_pack("{s:s}", "error", why));
        return;
    }
    geo_proxies_free(hw->banned_cidrs);
    hw->banned_cidrs = p;
}

static void on_cidrs(redisReply *reply, const char *err, void *ud)
{
    hub_worker_t *hw = ud;
    if (err != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    buf_t list = BUF_INIT;
    int64_t now = now_wall_ms();
    for (size_t i = 0; i < reply->elements; i++) {
        /* "expiresAtMs|cidr": an expired ban no longer counts */
        const char *v = reply->element[i]->type == REDIS_REPLY_STRING ? reply->element[i]->str : NULL;
        const char *bar = v != NULL ? strchr(v, '|') : NULL;
        if (bar == NULL || atoll(v) <= now)
            continue;
        if (list.len > 0)
            buf_append_str(&list, ",");
        buf_append_str(&list, bar + 1);
    }
    set_cidrs(hw, list.base != NULL ? list.base : "");
    buf_free(&list);
}

void hub_bans_reload(hub_worker_t *hw)
{
    redis_command(hw->cmd, on_cidrs, hw, "HVALS", keys_name(KEYS_BAN_CIDRS, NULL).s, (const char *)NULL);
}

int hub_bans_cover_ip(hub_worker_t *hw, const char *ip)
{
    return hw->banned_cidrs != NULL && geo_proxies_contains(hw->banned_cidrs, ip);
}

/* Does a ban notice {"guestId"?, "ip"?} cover this connection? `ip` may be a CIDR. */
static int covers(hub_conn_t *c, const char *gid, const char *ip)
{
    if (gid != NULL && strcmp(c->gid, gid) == 0)
        return 1;
    if (ip == NULL)
        return 0;
    if (strchr(ip, '/') == NULL) {
        char canon[GEO_CANONICAL_MAX];
        return geo_addr_canonical(ip, canon, sizeof(canon)) == 0 && strcmp(c->ip, canon) == 0;
    }
    int err = 0;
    char why[64];
    geo_proxies_t *one = geo_proxies_parse(ip, &err, why, sizeof(why));
    int hit = one != NULL && geo_proxies_contains(one, c->ip);
    geo_proxies_free(one);
    return hit;
}

void hub_bans_on_notice(hub_worker_t *hw, const char *msg, size_t len)
{
    json_error_t jerr;
    json_t *m = json_loadb(msg, len, 0, &jerr);
    const char *gid = json_string_value(json_object_get(m, "guestId"));
    const char *ip = json_string_value(json_object_get(m, "ip"));
    hub_bans_reload(hw); /* a CIDR ban or a lifted one changes the list */
    if (json_is_true(json_object_get(m, "lifted")) || (gid == NULL && ip == NULL)) {
        json_decref(m);
        return;
    }
    /* collect first: closing a connection changes the registry; every
     * match, however many a worker holds */
    hub_conn_t **hit = NULL;
    size_t n = 0, cap = 0;
    for (size_t b = 0; b < HUB_REGISTRY_BUCKETS; b++)
        for (hub_conn_t *c = hw->registry[b]; c != NULL; c = c->hnext) {
            if (c->root == NULL || !covers(c, gid, ip))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                hit = buf_xrealloc(hit, cap * sizeof(*hit));
            }
            hit[n++] = hub_conn_ref(c);
        }
    for (size_t i = 0; i < n; i++) {
        if (hit[i]->root != NULL) {
            metrics_inc(hw->hub->m.banned);
            sio_socket_close_connection(hit[i]->root);
        }
        hub_conn_unref(hit[i]);
    }
    free(hit);
    if (n > 0)
        log_info("banned connections closed", json_pack("{s:i}", "count", (int)n));
    json_decref(m);
}
