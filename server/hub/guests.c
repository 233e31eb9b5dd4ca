/*
 * Namespace /: consent, identity (new or resumed from a token), place, and
 * registration with Redis, then the `session` event and, for a guest with a
 * live chat session, `user-session` with resumed: true.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../chat/chat.h"
#include "../log/log.h"
#include "internal.h"
#include "../now/now.h"

static void reject(sio_socket_t *s, const char *message)
{
    sio_socket_reject(s, json_pack("{s:s}", "message", message));
}

static void fill_match_guest(hub_conn_t *c, match_guest_t *g)
{
    memset(g, 0, sizeof(*g));
    g->guest_id = c->gid;
    g->ip = c->ip;
    g->channel = c->hw->channel;
    g->conn = c->conn_id;
    if (c->place.city_id != 0)
        snprintf(g->city_id, sizeof(g->city_id), "%u", c->place.city_id);
    snprintf(g->city, sizeof(g->city), "%s", c->place.city);
    snprintf(g->country, sizeof(g->country), "%s", c->place.country);
    if (c->place.has_coords) {
        snprintf(g->lat, sizeof(g->lat), "%.4f", c->place.lat);
        snprintf(g->lon, sizeof(g->lon), "%.4f", c->place.lon);
    }
}

/* Answers the namespace CONNECTs that waited for /. */
static void settle_deferred(hub_conn_t *c, int accept)
{
    for (int i = 0; i < c->ndeferred; i++) {
        sio_socket_set_data(c->deferred[i], NULL);
        if (accept) {
            sio_socket_accept(c->deferred[i]);
            if (strcmp(sio_socket_nsp(c->deferred[i]), "/chat") == 0)
                hub_chat_drain_if_queued(c);
        } else
            reject(c->deferred[i], "not_authenticated");
    }
    c->ndeferred = 0;
}

/* The CONNECT is answered: the client is told who it is and where. */
static void finish_connect(hub_conn_t *c, const match_result_t *r)
{
    hub_t *h = c->hw->hub;
    sio_socket_accept(c->root);
    c->accepted = 1;
    hub_registry_add(c->hw, c);
    char token[GUEST_TOKEN_MAX];
    c->expires = now_unix_s() + h->cfg->token_ttl_s;
    guest_token_make(&h->secret, c->gid, c->expires, token);
    json_t *session =
        json_pack("{s:s,s:s,s:I,s:b,s:{s:o,s:o,s:s}}", "guestId", c->gid, "token", token, "expiresAt",
                  (json_int_t)c->expires, "resumed", c->resumed, "geo", "city", hub_json_str_or_null(c->place.city),
                  "country", hub_json_str_or_null(c->place.country), "source", c->place.source);
    hub_emit(c, "/", "session", session);
    json_decref(session);
    metrics_inc(c->resumed ? h->m.guests_resumed : h->m.guests_new);
    if (r != NULL && r->err == NULL && strcmp(r->status, "session") == 0) {
        json_t *us = hub_user_session(r->sid, r->alias, r->peer.city, r->peer.country,
                                      hub_json_distance(r->has_distance, r->distance_km), r->started, 1);
        hub_emit(c, "/", "user-session", us);
        json_decref(us);
        hub_chat_session_known(c, r->sid, r->started);
        chat_presence(c->hw->cmd, c->gid, 1, NULL, NULL); /* the peer hears it is back */
    }
    settle_deferred(c, 1);
}

static void on_hello(const match_result_t *r, void *ud)
{
    hub_conn_t *c = ud;
    if (c->root == NULL) { /* the client went away while Redis answered */
        hub_conn_unref(c);
        return;
    }
    if (!c->accepted) {
        if (strcmp(r->status, "banned") == 0) {
            metrics_inc(c->hw->hub->m.banned);
            settle_deferred(c, 0);
            sio_socket_set_data(c->root, NULL);
            reject(c->root, "banned");
            c->root = NULL;
            hub_conn_unref(c); /* the socket's reference */
        } else {
            /* Redis failing is no reason to refuse a guest: it can chat, matching says unavailable */
            finish_connect(c, r);
        }
    } else if (strcmp(r->status, "banned") == 0) {
        sio_socket_close_connection(c->root);
    } else if (c->reannounce && strcmp(r->status, "session") == 0) {
        chat_presence(c->hw->cmd, c->gid, 1, NULL, NULL); /* its peer was told it went */
    }
    if (r->err == NULL && strcmp(r->status, "banned") != 0 && c->root != NULL)
        match_held(c->hw->cmd, c->hw->channel, c->gid, 1);
    c->reannounce = 0;
    hub_conn_unref(c);
}

void hub_guest_rehello(hub_conn_t *c)
{
    match_guest_t g;
    fill_match_guest(c, &g);
    if (match_hello(c->hw->cmd, &c->hw->hub->match, &g, on_hello, hub_conn_ref(c)) != 0)
        hub_conn_unref(c);
}

/* Device location from the CONNECT payload, when it is two finite numbers in range. */
static void apply_location(hub_conn_t *c, json_t *loc)
{
    if (!json_is_object(loc))
        return;
    json_t *lat = json_object_get(loc, "lat"), *lon = json_object_get(loc, "lon");
    if (!json_is_number(lat) || !json_is_number(lon))
        return;
    geo_apply_device(json_number_value(lat), json_number_value(lon), &c->place);
}

static void on_root_connect(sio_socket_t *s, json_t *auth, void *ud)
{
    hub_t *h = ud;
    hub_worker_t *hw = sio_worker_data(sio_socket_worker(s));
    if (!json_is_true(json_object_get(auth, "consent"))) {
        metrics_inc(h->m.consent_refused);
        reject(s, "consent_required");
        return;
    }
    /* the one spelling of the address: ban keys and limits compare strings */
    char ip[GEO_CANONICAL_MAX];
    if (geo_addr_canonical(sio_socket_remote_addr(s), ip, sizeof(ip)) != 0)
        buf_copy_str(ip, sizeof(ip), sio_socket_remote_addr(s));
    if (hub_bans_cover_ip(hw, ip)) {
        metrics_inc(h->m.banned);
        reject(s, "banned");
        return;
    }
    const char *token = json_string_value(json_object_get(auth, "token"));
    char gid[GUEST_ID_LEN + 1];
    int64_t exp = 0;
    int resumed = token != NULL && guest_token_verify(&h->secret, token, now_unix_s(), gid, &exp) == 0;
    if (!resumed && json_object_get(auth, "token") != NULL)
        metrics_inc(h->m.auth_failures);
    uint64_t now = now_mono_ms();
    if (!resumed && !limits_take(h->ip_limits, ip, LIMITS_GUEST, now)) {
        limits_count_refusal(LIMITS_GUEST_IP);
        reject(s, "rate_limited");
        return;
    }
    if (!resumed)
        guest_new_id(gid);
    int slot = limits_acquire(h->guest_limits, gid, now);
    if (slot == LIMITS_REFUSED) {
        limits_count_refusal(LIMITS_CONN_GUEST);
        reject(s, "rate_limited");
        return;
    }
    hub_conn_t *c = buf_xcalloc(1, sizeof(*c));
    c->refs = 1; /* the socket's */
    c->guest_slot = slot;
    c->resumed = resumed;
    memcpy(c->gid, gid, sizeof(gid));
    c->waiting_level = -1;
    c->hw = hw;
    c->root = s;
    buf_copy_str(c->ip, sizeof(c->ip), ip);
    snprintf(c->conn_id, sizeof(c->conn_id), "%s:%d:%llu", h->cfg->node_id, hw->index,
             (unsigned long long)++hw->next_conn);
    geo_lookup_ip(h->geo, c->ip, &c->place);
    apply_location(c, json_object_get(auth, "location"));
    sio_socket_set_data(s, c);

    match_guest_t g;
    fill_match_guest(c, &g);
    if (match_hello(hw->cmd, &h->match, &g, on_hello, hub_conn_ref(c)) != 0) {
        hub_conn_unref(c);
        finish_connect(c, NULL);
    }
}

/* This connection was the guest's last one: its peer hears that it went. */
static void on_cancelled(const match_result_t *r, void *ud)
{
    hub_conn_t *c = ud;
    if (r->err == NULL && strcmp(r->status, "ok") == 0)
        chat_presence(c->hw->cmd, c->gid, 0, NULL, NULL);
    hub_conn_unref(c);
}

static void on_root_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    hub_conn_t *c = sio_socket_data(s);
    if (c == NULL)
        return;
    c->root = NULL;
    settle_deferred(c, 0);
    hub_matching_conn_gone(c);
    if (c->accepted) {
        hub_worker_t *hw = c->hw;
        /* only while this connection is still the guest's: it may have moved on */
        if (match_cancel(hw->cmd, &hw->hub->match, c->gid, c->conn_id, 1, on_cancelled, hub_conn_ref(c)) != 0)
            hub_conn_unref(c);
    }
    hub_registry_remove(c->hw, c);
    if (c->accepted && hub_registry_find(c->hw, c->gid) == NULL)
        match_held(c->hw->cmd, c->hw->channel, c->gid, 0);
    hub_conn_unref(c);
}

void hub_require_root(sio_socket_t *s, json_t *auth, void *ud)
{
    hub_conn_t *ready = hub_conn_of(s);
    if (ready != NULL) {
        sio_socket_accept(s);
        if (strcmp(sio_socket_nsp(s), "/chat") == 0)
            hub_chat_drain_if_queued(ready);
        return;
    }
    /* / is still being answered (Redis is asked about bans): answer this one right after it */
    sio_socket_t *root = sio_socket_sibling_pending(s, "/");
    hub_conn_t *c = root != NULL && !sio_socket_connected(root) ? sio_socket_data(root) : NULL;
    if (c != NULL && c->ndeferred < (int)(sizeof(c->deferred) / sizeof(c->deferred[0]))) {
        c->deferred[c->ndeferred++] = s;
        sio_socket_set_data(s, c);
        return;
    }
    reject(s, "not_authenticated");
}

/* A namespace socket that goes away while it waits for / must not be answered later. */
void hub_nsp_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    hub_conn_t *c = sio_socket_data(s);
    if (c == NULL || sio_socket_connected(s))
        return;
    for (int i = 0; i < c->ndeferred; i++)
        if (c->deferred[i] == s) {
            c->deferred[i] = c->deferred[--c->ndeferred];
            break;
        }
}

void hub_guests_attach(hub_t *h, sio_server_t *srv)
{
    sio_nsp_t *root = sio_server_of(srv, "/");
    sio_nsp_on_connect(root, on_root_connect, h);
    sio_nsp_on_disconnect(root, on_root_disconnect, h);
    /* /match and /chat take a connection only once / accepted it */
    const char *const guarded[] = {"/match", "/chat"};
    for (size_t i = 0; i < 2; i++) {
        sio_nsp_t *n = sio_server_of(srv, guarded[i]);
        sio_nsp_on_connect(n, hub_require_root, h);
        sio_nsp_on_disconnect(n, hub_nsp_disconnect, h);
    }
}
