/*
 * The hub's skeleton: configuration at start, the per-worker state (Redis
 * connections, the worker's pub/sub channel, the registry of its guests),
 * and the dispatch of notifications that other nodes published for them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "../offq/offq.h"
#include "../log/log.h"
#include "internal.h"

#define TOUCH_INTERVAL_MS 10000
#define LOCATION_TTL_S 30
#define HISTORY_READY_LAG_MS 10000
#define OFFQ_MAX_LEN 10000 /* messages waiting for one guest; beyond, a send answers unavailable */

hub_t *hub_new(const config_t *cfg, char *err, size_t errlen)
{
    hub_t *h = buf_xcalloc(1, sizeof(*h));
    h->cfg = cfg;
    /* unique per process even when CHATD_NODE_ID is reused: a restarted node is not its dead self (nodes.c) */
    char boot[GUEST_ID_LEN + 1];
    guest_new_id(boot);
    snprintf(h->bus_prefix, sizeof(h->bus_prefix), "nc:w:%s.%.8s:", cfg->node_id, boot);
    int created = 0, e = 0;
    if (guest_secret_load(cfg->secret_file, &h->secret, &created, err, errlen) != 0)
        goto Error;
    if (created)
        log_warn("created a new token secret; share this file with every node",
                 json_pack("{s:s}", "file", cfg->secret_file));
    if (cfg->geoip_db != NULL) {
        char why[256];
        h->geo = geo_db_open(cfg->geoip_db, &e, why, sizeof(why));
        if (h->geo == NULL)
            log_warn("geo database unusable: every guest is placed \"unknown\"",
                     json_pack("{s:s,s:s}", "file", cfg->geoip_db, "error", why));
    } else {
        log_warn("no GEOIP_DB: every guest is placed \"unknown\"", NULL);
    }
    char why[256];
    h->proxies = geo_proxies_parse(cfg->trusted_proxies, &e, why, sizeof(why));
    if (h->proxies == NULL) {
        snprintf(err, errlen, "TRUSTED_PROXIES: %s", why);
        goto Error;
    }
    if (redis_target_parse(cfg->redis_url, &h->redis, err, errlen) != 0)
        goto Error;
    limits_config_t ipl = {
        .name = "ip", .max_entries = LIMITS_DEFAULT_ENTRIES, .max_conns = (unsigned)cfg->max_conn_per_ip};
    ipl.rate[LIMITS_HANDSHAKE][0] = cfg->handshake_rate_ip[0];
    ipl.rate[LIMITS_HANDSHAKE][1] = cfg->handshake_rate_ip[1];
    ipl.rate[LIMITS_GUEST][0] = cfg->guest_rate_ip[0];
    ipl.rate[LIMITS_GUEST][1] = cfg->guest_rate_ip[1];
    ipl.rate[LIMITS_CHAT][0] = cfg->chat_rate_ip[0];
    ipl.rate[LIMITS_CHAT][1] = cfg->chat_rate_ip[1];
    h->ip_limits = limits_new(&ipl);
    limits_config_t gl = {
        .name = "guest", .max_entries = LIMITS_DEFAULT_ENTRIES, .max_conns = (unsigned)cfg->max_conn_per_guest};
    h->guest_limits = limits_new(&gl);
    h->match = (match_config_t){
        .nearby_km = cfg->match_nearby_km,
        .proposal_ms = cfg->match_proposal_ms,
        .widen_ms = {cfg->match_widen_ms[0], cfg->match_widen_ms[1], cfg->match_widen_ms[2]},
        .ttl_s = cfg->token_ttl_s,
        .session_ttl_s = cfg->chat_session_ttl_s,
        .location_ttl_s = LOCATION_TTL_S,
        .rate_guest_n = cfg->match_rate_guest[0],
        .rate_guest_s = cfg->match_rate_guest[1],
        .rate_ip_n = cfg->match_rate_ip[0],
        .rate_ip_s = cfg->match_rate_ip[1],
    };
    int hcode = 0;
    h->history = hist_open(cfg->history_url, h->secret.key, h->secret.len, &hcode, err, errlen);
    if (h->history == NULL)
        goto Error;
    h->offq = offq_new(cfg->amqp_url, cfg->token_ttl_s, OFFQ_MAX_LEN, err, errlen);
    if (h->offq == NULL)
        goto Error;
    match_init();
    chat_init();
    h->scripts[0] = &match_script;
    h->scripts[1] = &chat_script;
    h->scripts[2] = NULL;
    hub_metrics_t *m = &h->m;
    m->guests_new = metrics_counter("chatd_guests_total", "kind=\"new\"", "Guests that connected to /");
    m->guests_resumed = metrics_counter("chatd_guests_total", "kind=\"resumed\"", "Guests that connected to /");
    m->auth_failures =
        metrics_counter("chatd_auth_failures_total", NULL, "Tokens refused (forged, expired, malformed)");
    m->consent_refused = metrics_counter("chatd_consent_refused_total", NULL, "CONNECTs without consent");
    m->banned = metrics_counter("chatd_banned_connects_total", NULL, "CONNECTs refused as banned");
    m->match_requests = metrics_counter("chatd_match_requests_total", NULL, "match:request events");
    m->match_errors = metrics_counter("chatd_match_errors_total", NULL, "match:request answered with an error");
    m->rate_limited =
        metrics_counter("chatd_rate_limited_total", "what=\"match\"", "Requests refused by a token bucket");
    m->proposals = metrics_counter("chatd_match_proposals_total", NULL, "Proposals sent to waiting guests");
    m->matches = metrics_counter("chatd_matches_total", NULL, "Sessions made by the matcher (counted per guest)");
    m->expired = metrics_counter("chatd_match_proposals_expired_total", NULL, "Proposals left unanswered");
    m->declined = metrics_counter("chatd_match_proposals_declined_total", NULL, "Proposals declined");
    static const char *const levels[4] = {"scope=\"city\"", "scope=\"nearby\"", "scope=\"country\"", "scope=\"any\""};
    for (int i = 0; i < 4; i++)
        m->waiting[i] =
            metrics_gauge("chatd_match_waiting", levels[i], "Guests of this node waiting, by the level searched now");
    m->msgs_in = metrics_counter("chatd_messages_total", "dir=\"in\"", "chat:message events from clients");
    m->msgs_out = metrics_counter("chatd_messages_total", "dir=\"out\"", "chat:message events handed to clients");
    m->msgs_delivered = metrics_counter("chatd_message_acks_total", "status=\"delivered\"", "Sender acks by outcome");
    m->msgs_queued = metrics_counter("chatd_message_acks_total", "status=\"queued\"", "Sender acks by outcome");
    m->msgs_unavailable =
        metrics_counter("chatd_message_acks_total", "status=\"unavailable\"", "Sender acks by outcome");
    m->msgs_queued_delivered = metrics_counter("chatd_queued_already_delivered_total", NULL,
                                               "Queued messages dropped at fetch: their receipt beat the queue");
    m->chat_rate_limited =
        metrics_counter("chatd_rate_limited_total", "what=\"chat\"", "Requests refused by a token bucket");
    m->receipt_retries =
        metrics_counter("chatd_receipt_retries_total", NULL, "Receipts tried again because Redis did not store them");
    m->wal_stored = metrics_counter("chatd_history_wal_stored_total", NULL,
                                    "Write-ahead log entries stored in the history and removed");
    m->wal_claimed = metrics_counter("chatd_history_wal_claimed_total", NULL,
                                     "Write-ahead log entries taken over from a node that did not store them");
    m->guests_reaped =
        metrics_counter("chatd_guests_reaped_total", NULL, "Guests of dead nodes let go, their peers told they went");
    m->reports = metrics_counter("chatd_reports_total", NULL, "chat:report events that ended a session");
    m->history_queued = metrics_gauge("chatd_history_queued", NULL, "History writes waiting to be stored");
    m->history_lag_ms = metrics_gauge("chatd_history_lag_ms", NULL, "Age of the oldest history write not yet stored");
    m->redis_down = metrics_counter("chatd_redis_disconnects_total", NULL, "Redis connections lost");
    return h;
Error:
    hub_free(h);
    return NULL;
}

void hub_free(hub_t *h)
{
    if (h == NULL)
        return;
    offq_free(h->offq);
    hist_close(h->history, 2000); /* what is queued gets two seconds to be stored */
    geo_db_close(h->geo);
    geo_proxies_free(h->proxies);
    limits_free(h->ip_limits);
    limits_free(h->guest_limits);
    free(h);
}

limits_t *hub_ip_limits(hub_t *h)
{
    return h->ip_limits;
}

void hub_resolve_addr(void *hub, const char *peer, const char *const *lines, const size_t *lens, size_t n, char *out,
                      size_t outlen)
{
    hub_t *h = hub;
    geo_client_ip_lines(h->proxies, peer, lines, lens, n, out, outlen);
    /* one spelling per address, so that limits and bans key on the address */
    char canon[GEO_CANONICAL_MAX];
    if (geo_addr_canonical(out, canon, sizeof(canon)) == 0)
        buf_copy_str(out, outlen, canon);
}

/* ---- the worker's Redis ---- */

static void on_cmd_state(int up, void *ud)
{
    hub_worker_t *hw = ud;
    atomic_store(&hw->hub->redis_up[hw->index], up);
    if (!up) {
        metrics_inc(hw->hub->m.redis_down);
        return;
    }
    hub_bans_reload(hw);
    /* Redis came back (or was restarted empty): tell it again where our guests are */
    for (size_t b = 0; b < HUB_REGISTRY_BUCKETS; b++)
        for (hub_conn_t *c = hw->registry[b]; c != NULL; c = c->hnext) {
            hub_guest_rehello(c);
            hub_matching_redis_back(c);
        }
}

static void on_channel_message(const char *channel, const char *msg, size_t len, void *ud)
{
    hub_worker_t *hw = ud;
    if (strcmp(channel, HUB_BANS_CHANNEL) == 0)
        hub_bans_on_notice(hw, msg, len);
    else
        hub_bus_on_published(hw, msg, len);
}

static void on_touch(sio_timer_t *t, void *ud)
{
    hub_worker_t *hw = ud;
    hub_bans_reload(hw); /* CIDR bans expire by time */
    if (redis_client_up(hw->cmd))
        for (size_t b = 0; b < HUB_REGISTRY_BUCKETS; b++)
            for (hub_conn_t *c = hw->registry[b]; c != NULL; c = c->hnext)
                match_touch(hw->cmd, &hw->hub->match, c->gid);
    sio_timer_start(t, TOUCH_INTERVAL_MS);
}

static void worker_start(sio_worker_t *w, void *ud)
{
    hub_t *h = ud;
    hub_worker_t *hw = buf_xcalloc(1, sizeof(*hw));
    hw->hub = h;
    hw->w = w;
    hw->index = sio_worker_index(w);
    snprintf(hw->channel, sizeof(hw->channel), "%s%d", h->bus_prefix, hw->index);
    sio_worker_set_data(w, hw);
    hw->cmd = redis_client_new(w, &h->redis, h->scripts, on_cmd_state, NULL, hw);
    hw->sub = redis_client_new(w, &h->redis, NULL, NULL, on_channel_message, hw);
    redis_subscribe(hw->sub, hw->channel);
    redis_subscribe(hw->sub, HUB_BANS_CHANNEL);
    hw->touch = sio_timer_new(w, on_touch, hw);
    sio_timer_start(hw->touch, TOUCH_INTERVAL_MS);
    hub_bus_join(hw);
    if (hw->index == 0)
        hub_wal_start(hw);
    hub_nodes_start(hw);
    atomic_fetch_add(&h->workers_started, 1);
}

static void worker_stop(sio_worker_t *w, void *ud)
{
    hub_worker_t *hw = sio_worker_data(w);
    if (hw == NULL)
        return;
    hw->stopping = 1;
    hub_bus_leave(hw);
    /* sessions are closed by now; their last commands are queued ahead of the close */
    hub_chat_worker_stop(hw);
    hub_wal_stop(hw);
    hub_nodes_stop(hw);
    for (size_t b = 0; b < HUB_REGISTRY_BUCKETS; b++)
        while (hw->registry[b] != NULL)
            hub_registry_remove(hw, hw->registry[b]);
    sio_timer_free(hw->touch);
    geo_proxies_free(hw->banned_cidrs);
    redis_client_free(hw->sub);
    redis_client_free(hw->cmd);
    hub_receipts_stop(hw); /* after the client: its last answers may still free some */
    atomic_store(&hw->hub->redis_up[hw->index], 0);
    sio_worker_set_data(w, NULL);
    free(hw);
}

static void route_readyz(void *ud, const char *method, const char *path, sio_http_response_t *res)
{
    hub_t *h = ud;
    int redis = atomic_load(&h->workers_started) > 0;
    for (int i = 0; i < h->nworkers; i++)
        if (!atomic_load(&h->redis_up[i]))
            redis = 0;
    int rabbit = offq_up(h->offq);
    size_t queued = 0;
    int64_t lag = 0;
    hist_backlog(h->history, &queued, &lag);
    int history = lag < HISTORY_READY_LAG_MS; /* writes that have waited long mean the store is not taking them */
    int up = redis && rabbit && history;
    res->content_type = "application/json";
    res->status = up ? 200 : 503;
    json_t *body = json_pack("{s:b,s:{s:s,s:s,s:s}}", "ready", up, "dependencies", "redis", redis ? "up" : "down",
                             "rabbitmq", rabbit ? "up" : "down", "history", history ? "up" : "down");
    char *text = json_dumps(body, JSON_COMPACT);
    buf_append_str(&res->body, text);
    free(text);
    json_decref(body);
}

struct hist *hub_history(hub_t *h)
{
    return h->history;
}

const struct redis_target *hub_redis_target(const hub_t *h)
{
    return &h->redis;
}

const void *hub_secret(const hub_t *h, size_t *len)
{
    *len = h->secret.len;
    return h->secret.key;
}

void hub_metrics_refresh(hub_t *h)
{
    size_t queued = 0;
    int64_t lag = 0;
    hist_backlog(h->history, &queued, &lag);
    metrics_set(h->m.history_queued, (int64_t)queued);
    metrics_set(h->m.history_lag_ms, lag);
}

void hub_attach(hub_t *h, sio_server_t *srv)
{
    h->nworkers = h->cfg->workers;
    sio_server_on_worker(srv, worker_start, worker_stop, h);
    sio_server_route(srv, "/readyz", route_readyz, h);
    hub_guests_attach(h, srv);
    hub_matching_attach(h, srv);
    hub_chat_attach(h, srv);
}
