/*
 * Namespace /match: requests, answers to proposals, the widening timers of a
 * waiting guest, and the matcher's notifications for the guests of this
 * worker. Redis decides everything; this side validates, calls, and relays.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log/log.h"
#include "internal.h"

#define PROPOSAL_GRACE_MS 1000 /* the requester's backup deadline comes after the proposed guest's */

/* A call in flight for an event with an ack: the socket may be gone when Redis answers. */
typedef struct pending_ack {
    hub_conn_t *c;
    int64_t ack_id;
    int kind;
} pending_ack_t;

enum { ACK_REQUEST, ACK_CANCEL, ACK_ACCEPT, ACK_DECLINE };

static pending_ack_t *pending_new(hub_conn_t *c, int64_t ack_id, int kind)
{
    pending_ack_t *p = buf_xcalloc(1, sizeof(*p));
    p->c = hub_conn_ref(c);
    p->ack_id = ack_id;
    p->kind = kind;
    return p;
}

static void pending_free(pending_ack_t *p)
{
    hub_conn_unref(p->c);
    free(p);
}

/* The /match socket of the connection, when it is still there. */
static sio_socket_t *match_socket(hub_conn_t *c)
{
    return c->root != NULL ? sio_socket_sibling(c->root, "/match") : NULL;
}

/* Keeps the waiting gauge true: `level` is -1 when the guest stops waiting. */
static void set_waiting(hub_conn_t *c, int level)
{
    hub_metrics_t *m = &c->hw->hub->m;
    if (c->waiting_level >= 0)
        metrics_dec(m->waiting[c->waiting_level]);
    if (level >= 0 && level <= MATCH_ANY)
        metrics_inc(m->waiting[level]);
    c->waiting_level = level >= 0 && level <= MATCH_ANY ? level : -1;
}

static void stop_timers(hub_conn_t *c)
{
    set_waiting(c, -1);
    if (c->widen != NULL)
        sio_timer_stop(c->widen);
    if (c->proposal != NULL)
        sio_timer_stop(c->proposal);
    if (c->proposing != NULL)
        sio_timer_stop(c->proposing);
}

void hub_matching_conn_gone(hub_conn_t *c)
{
    stop_timers(c);
}

/* ---- widening ---- */

static void schedule_widen(hub_conn_t *c);

static void on_widened(const match_result_t *r, void *ud)
{
    hub_conn_t *c = ud;
    if (c->root != NULL && r->err == NULL && strcmp(r->status, "ok") == 0) {
        c->widen_stage = r->stage;
        if (c->waiting_level >= 0)
            set_waiting(c, c->widen_stage);
        schedule_widen(c); /* match:waiting comes through the guest's channel */
    }
    hub_conn_unref(c);
}

static void on_widen_timer(sio_timer_t *t, void *ud)
{
    hub_conn_t *c = ud;
    if (c->root == NULL)
        return;
    hub_worker_t *hw = c->hw;
    int next = c->widen_stage + 1;
    if (match_widen(hw->cmd, &hw->hub->match, c->gid, next, on_widened, hub_conn_ref(c)) != 0) {
        hub_conn_unref(c);
        sio_timer_start(t, 1000); /* Redis is down: try again when it may be back */
    }
}

static void schedule_widen(hub_conn_t *c)
{
    int next = c->widen_stage + 1;
    if (next > c->widen_scope || next > MATCH_ANY)
        return;
    const match_config_t *m = &c->hw->hub->match;
    uint64_t waited = sio_worker_now(c->hw->w) - c->widen_t0;
    uint64_t at = (uint64_t)m->widen_ms[next - 1];
    if (c->widen == NULL)
        c->widen = sio_timer_new(c->hw->w, on_widen_timer, c);
    sio_timer_start(c->widen, at > waited ? at - waited : 0);
}

/* ---- answers to the client's events ---- */

static void on_answer(const match_result_t *r, void *ud)
{
    pending_ack_t *p = ud;
    hub_conn_t *c = p->c;
    hub_t *h = c->hw->hub;
    sio_socket_t *s = match_socket(c);
    if (r->err != NULL) {
        if (p->kind == ACK_REQUEST) {
            metrics_inc(h->m.match_errors);
            if (strcmp(r->err, "rate_limited") == 0)
                metrics_inc(h->m.rate_limited);
        }
        if (s != NULL)
            hub_ack_error(s, p->ack_id, r->err);
        pending_free(p);
        return;
    }
    switch (p->kind) {
    case ACK_REQUEST:
        if (s != NULL)
            hub_ack(s, p->ack_id, json_pack("{s:b,s:b}", "ok", 1, "queued", 1));
        if (c->root != NULL) {
            c->widen_stage = r->stage;
            c->widen_scope = r->scope;
            c->widen_t0 = sio_worker_now(c->hw->w);
            set_waiting(c, c->widen_stage);
            schedule_widen(c);
        }
        break;
    case ACK_ACCEPT: { /* the session begins: the history hears of it once, from the accepting side */
        const match_place_t *pa = &r->requester_place, *pb = &r->accepter_place;
        hist_place_t ga = {pa->city[0] ? pa->city : NULL, pa->country[0] ? pa->country : NULL};
        hist_place_t gb = {pb->city[0] ? pb->city : NULL, pb->country[0] ? pb->country : NULL};
        hub_history_session_start(h, r->sid, r->requester, c->gid, ga, gb, r->started);
    }
        if (s != NULL)
            hub_ack(s, p->ack_id, json_pack("{s:b}", "ok", 1));
        break;
    case ACK_DECLINE:
        metrics_inc(h->m.declined);
        /* fall through */
    default:
        if (s != NULL)
            hub_ack(s, p->ack_id, json_pack("{s:b}", "ok", 1));
        break;
    }
    pending_free(p);
}

/* Validates the first argument: an object (absent means {}); NULL when it is something else. */
static json_t *payload_of(json_t *args)
{
    json_t *a = json_array_get(args, 0);
    if (a == NULL)
        return json_object(); /* a new reference, like the branch below */
    return json_is_object(a) ? json_incref(a) : NULL;
}

static hub_conn_t *conn_or_refuse(sio_socket_t *s, int64_t ack_id)
{
    hub_conn_t *c = hub_conn_of(s);
    if (c == NULL)
        hub_ack_error(s, ack_id, "not_authenticated");
    return c;
}

static void on_request(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    hub_t *h = ud;
    hub_conn_t *c = conn_or_refuse(s, ack_id);
    if (c == NULL)
        return;
    metrics_inc(h->m.match_requests);
    json_t *p = payload_of(args);
    int scope = MATCH_ANY;
    double max_km = 0;
    json_t *js = p != NULL ? json_object_get(p, "scope") : NULL,
           *jd = p != NULL ? json_object_get(p, "maxDistanceKm") : NULL;
    int ok = p != NULL;
    if (ok && js != NULL && !json_is_null(js))
        ok = json_is_string(js) && (scope = match_parse_scope(json_string_value(js))) >= 0;
    if (ok && jd != NULL && !json_is_null(jd)) {
        max_km = json_number_value(jd);
        ok = json_is_number(jd) && isfinite(max_km) && max_km > 0 && max_km <= 20040;
    }
    json_decref(p);
    if (!ok) {
        metrics_inc(h->m.match_errors);
        hub_ack_error(s, ack_id, "invalid");
        return;
    }
    c->req_scope = scope;
    c->req_max_km = max_km;
    pending_ack_t *pa = pending_new(c, ack_id, ACK_REQUEST);
    if (match_request(c->hw->cmd, &h->match, c->gid, c->ip, scope, max_km, on_answer, pa) != 0) {
        pending_free(pa);
        metrics_inc(h->m.match_errors);
        hub_ack_error(s, ack_id, "unavailable");
    }
}

static void on_cancel(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    hub_t *h = ud;
    hub_conn_t *c = conn_or_refuse(s, ack_id);
    if (c == NULL)
        return;
    stop_timers(c);
    pending_ack_t *pa = pending_new(c, ack_id, ACK_CANCEL);
    if (match_cancel(c->hw->cmd, &h->match, c->gid, NULL, 0, on_answer, pa) != 0) {
        pending_free(pa);
        hub_ack_error(s, ack_id, "unavailable");
    }
}

/* accept and decline: {"proposalId": string} */
static void answer_proposal(sio_socket_t *s, json_t *args, int64_t ack_id, hub_t *h, int kind)
{
    hub_conn_t *c = conn_or_refuse(s, ack_id);
    if (c == NULL)
        return;
    json_t *p = payload_of(args);
    const char *pid = json_string_value(json_object_get(p, "proposalId"));
    if (pid == NULL || !guest_id_valid(pid)) {
        json_decref(p);
        hub_ack_error(s, ack_id, kind == ACK_ACCEPT ? "unknown_proposal" : "invalid");
        return;
    }
    pending_ack_t *pa = pending_new(c, ack_id, kind);
    int rc = kind == ACK_ACCEPT ? match_accept(c->hw->cmd, &h->match, c->gid, pid, on_answer, pa)
                                : match_decline(c->hw->cmd, &h->match, c->gid, pid, on_answer, pa);
    json_decref(p);
    if (rc != 0) {
        pending_free(pa);
        hub_ack_error(s, ack_id, "unavailable");
        return;
    }
    if (c->proposal != NULL)
        sio_timer_stop(c->proposal);
}

static void on_accept(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    answer_proposal(s, args, ack_id, ud, ACK_ACCEPT);
}

static void on_decline(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    answer_proposal(s, args, ack_id, ud, ACK_DECLINE);
}

/* ---- deadlines of proposals ---- */

static void on_expire_reply(const match_result_t *r, void *ud)
{
    hub_conn_t *c = ud;
    if (r->err == NULL && strcmp(r->status, "ok") == 0)
        metrics_inc(c->hw->hub->m.expired);
    hub_conn_unref(c);
}

static void expire(hub_conn_t *c, const char *pid)
{
    hub_worker_t *hw = c->hw;
    if (match_expire(hw->cmd, &hw->hub->match, pid, on_expire_reply, hub_conn_ref(c)) != 0)
        hub_conn_unref(c); /* Redis is down: the other side's deadline, or the key's TTL, ends it */
}

static void on_proposal_deadline(sio_timer_t *t, void *ud)
{
    hub_conn_t *c = ud;
    expire(c, c->proposal_id);
}

static void on_proposing_deadline(sio_timer_t *t, void *ud)
{
    hub_conn_t *c = ud;
    expire(c, c->proposing_id);
}

/* ---- notes from the matcher ---- */

static void on_proposal(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    const note_proposal_t *p = &n->u.proposal;
    json_t *ev =
        json_pack("{s:s,s:{s:o,s:o,s:o},s:I}", "proposalId", p->pid, "peer", "city",
                  p->city[0] ? json_string(p->city) : json_null(), "country",
                  p->cc[0] ? json_string(p->cc) : json_null(), "distanceKm",
                  hub_json_distance(p->has_distance, p->distance_km), "expiresIn", (json_int_t)((p->ms + 999) / 1000));
    hub_emit(c, "/match", "match:proposal", ev);
    json_decref(ev);
    metrics_inc(hw->hub->m.proposals);
    buf_copy_str(c->proposal_id, sizeof(c->proposal_id), p->pid);
    if (c->proposal == NULL)
        c->proposal = sio_timer_new(hw->w, on_proposal_deadline, c);
    sio_timer_start(c->proposal, p->ms > 0 ? (uint64_t)p->ms : 0);
}

static void on_proposing(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    buf_copy_str(c->proposing_id, sizeof(c->proposing_id), n->u.proposing.pid);
    if (c->proposing == NULL)
        c->proposing = sio_timer_new(hw->w, on_proposing_deadline, c);
    sio_timer_start(c->proposing, (n->u.proposing.ms > 0 ? (uint64_t)n->u.proposing.ms : 0) + PROPOSAL_GRACE_MS);
}

static void on_session(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    const note_session_t *ss = &n->u.session;
    stop_timers(c);
    metrics_inc(hw->hub->m.matches);
    json_t *us = hub_user_session(ss->sid, ss->alias, ss->city, ss->cc,
                                  hub_json_distance(ss->has_distance, ss->distance_km), ss->started, 0);
    hub_emit(c, "/", "user-session", us);
    json_decref(us);
    hub_chat_session_known(c, ss->sid, ss->started);
}

static void on_waiting(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    json_t *w = json_pack("{s:s,s:I}", "scope", match_level_name((int)n->u.waiting.stage), "waitedMs",
                          (json_int_t)n->u.waiting.waited_ms);
    hub_emit(c, "/match", "match:waiting", w);
    json_decref(w);
}

static void on_expired(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    stop_timers(c);
    json_t *ev = json_object();
    hub_emit(c, "/match", "match:expired", ev);
    json_decref(ev);
}

static void on_withdrawn(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    if (c->proposal != NULL && strcmp(c->proposal_id, n->u.ended.pid) == 0)
        sio_timer_stop(c->proposal);
    json_t *ev = json_pack("{s:s}", "proposalId", n->u.ended.pid);
    hub_emit(c, "/match", "match:withdrawn", ev);
    json_decref(ev);
}

void hub_matching_redis_back(hub_conn_t *c)
{
    if (c->waiting_level < 0 || c->root == NULL)
        return;
    /* no ack to send (-1); "already_queued" means Redis kept everything, which is fine too */
    pending_ack_t *pa = pending_new(c, -1, ACK_REQUEST);
    if (match_request(c->hw->cmd, &c->hw->hub->match, c->gid, c->ip, c->req_scope, c->req_max_km, on_answer, pa) != 0)
        pending_free(pa);
}

void hub_matching_attach(hub_t *h, sio_server_t *srv)
{
    sio_nsp_t *n = sio_server_of(srv, "/match");
    sio_nsp_on(n, "match:request", on_request, h);
    sio_nsp_on(n, "match:cancel", on_cancel, h);
    sio_nsp_on(n, "match:accept", on_accept, h);
    sio_nsp_on(n, "match:decline", on_decline, h);
    hub_bus_on(h, NOTE_PROPOSAL, on_proposal, true);
    hub_bus_on(h, NOTE_PROPOSING, on_proposing, true);
    hub_bus_on(h, NOTE_SESSION, on_session, true);
    hub_bus_on(h, NOTE_WAITING, on_waiting, true);
    hub_bus_on(h, NOTE_EXPIRED, on_expired, true);
    hub_bus_on(h, NOTE_WITHDRAWN, on_withdrawn, true);
}
