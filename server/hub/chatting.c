/*
 * Namespace /chat, the sender's side: messages with their promise (the
 * sender's ack only once the message is delivered or durably queued),
 * typing, read marks, leave and report, a session's end by time, and the
 * notes that come back to the origin.
 *
 * A message travels from the sender's worker (the origin, which keeps the
 * pending ack) to the worker of the recipient, in memory on this node or
 * over Redis pub/sub to another (bus.c). The recipient's side is in
 * receiving.c. No receipt in time, or no recipient connected, and the origin
 * puts the message in the recipient's offline queue; only the broker's
 * confirm lets the ack say "queued".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../chat/chat.h"
#include "../log/log.h"
#include "../keys/keys.h"
#include "internal.h"
#include "../now/now.h"

#define MAX_ID_LEN HUB_MAX_ID_LEN
#define MAX_TEXT 4096
#define MAX_REASON 500
#define MAX_ACKS HUB_MAX_ACKS
/*
 * Messages of one worker waiting for Redis to number them. Past this, new
 * ones are answered `unavailable` at once: offered 60,000 msgs/s, an unbounded
 * backlog left 358,303 messages unanswered 15 s after the last send; refusing
 * early keeps the rest at the node's pace. 2,048 also refused messages at
 * 20,000 msgs/s, which the node can almost carry.
 */
#define MAX_SENDS_WAITING 8192

/* ---- token buckets ---- */

static int bucket_take(hub_bucket_t *b, const int rate[2], uint64_t now_ms)
{
    if (rate[0] <= 0 || rate[1] <= 0)
        return 1;
    double cap = rate[0], per_ms = (double)rate[0] / (rate[1] * 1000.0);
    if (b->at_ms == 0)
        b->tokens = cap;
    else
        b->tokens = fmin(cap, b->tokens + (double)(now_ms - b->at_ms) * per_ms);
    b->at_ms = now_ms;
    if (b->tokens < 1)
        return 0;
    b->tokens -= 1;
    return 1;
}

/* ---- pending messages (at the origin): the table is in pending.c ---- */

static void pending_free(pending_msg_t *m)
{
    hub_pending_remove(m);
    sio_timer_free(m->timer);
    hub_conn_unref(m->c);
    free(m->text);
    free(m);
}

/* The ack of a settled message, {"ok":true,"id","seq","ts","status"}, written without a JSON tree (a hot path). */
static void ack_settled(sio_socket_t *s, int64_t ack_id, const char *id, int64_t seq, int64_t ts, const char *status)
{
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"ok\":true,\"id\":");
    buf_append_json_string(&b, id, strlen(id));
    buf_append_str(&b, ",\"seq\":");
    buf_append_u64(&b, (uint64_t)seq);
    buf_append_str(&b, ",\"ts\":");
    buf_append_u64(&b, (uint64_t)ts);
    buf_append_str(&b, ",\"status\":");
    buf_append_json_string(&b, status, strlen(status));
    buf_append_char(&b, '}');
    sio_socket_ack_text(s, ack_id, b.base, b.len);
    buf_free(&b);
}

/* Answers every ack waiting for this message, then forgets it. */
static void pending_answer(pending_msg_t *m, const char *status, const char *err)
{
    sio_socket_t *s = hub_chat_socket(m->c);
    if (status == NULL && err == NULL)
        err = "unavailable";
    for (int i = 0; i < m->nacks && s != NULL; i++) {
        if (err == NULL && status != NULL)
            ack_settled(s, m->acks[i], m->id, m->seq, m->ts, status);
        else
            hub_ack_error(s, m->acks[i], err);
    }
    if (err == NULL && status != NULL && strcmp(status, "delivered") == 0)
        metrics_inc(m->hw->hub->m.msgs_delivered);
    else if (err == NULL)
        metrics_inc(m->hw->hub->m.msgs_queued);
    else
        metrics_inc(m->hw->hub->m.msgs_unavailable);
    pending_free(m);
}

/* ---- the offline path ---- */

static void on_status_queued(const chat_result_t *r, void *ud)
{
    pending_msg_t *m = ud;
    /* a receipt may have won the race: then the message was delivered after all */
    const char *st = r->err == NULL && !r->gone ? r->msg_status : "queued";
    pending_answer(m, strcmp(st, "delivered") == 0 ? "delivered" : "queued", NULL);
}

static void on_queued(sio_worker_t *w, const char *err, void *ud)
{
    pending_msg_t *m = ud;
    if (err != NULL) {
        pending_answer(m, NULL, "unavailable");
        return;
    }
    /* if the recipient is connected after all, its worker reads the queue now */
    json_t *poke = json_pack("{s:s,s:s}", "t", "queued", "sid", m->sid);
    char *text = json_dumps(poke, JSON_COMPACT);
    json_decref(poke);
    chat_notify(m->hw->cmd, m->peer, text, NULL, NULL);
    free(text);
    if (chat_set_status(m->hw->cmd, m->sid, m->sender, m->id, "queued", on_status_queued, m) != 0)
        pending_answer(m, "queued", NULL); /* confirmed by the broker: durable, whatever Redis says */
}

/* A pending message named by its key: a callback finds it again, or finds it gone. */
typedef struct pending_ref {
    hub_worker_t *hw;
    char key[GUEST_ID_LEN * 2 + MAX_ID_LEN + 3];
} pending_ref_t;

static pending_ref_t *pending_ref(pending_msg_t *m)
{
    pending_ref_t *ref = buf_xcalloc(1, sizeof(*ref));
    ref->hw = m->hw;
    buf_copy_str(ref->key, sizeof(ref->key), m->key);
    return ref;
}

/* The message of `ref` if it still waits (then frees `ref`), or NULL. */
static pending_msg_t *pending_deref(pending_ref_t *ref)
{
    pending_msg_t *m = hub_pending_find(ref->hw, ref->key);
    free(ref);
    return m;
}

static void publish_offline(pending_msg_t *m)
{
    json_t *body = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "sessionId", m->sid, "id", m->id, "sender", m->sender, "seq",
                             (json_int_t)m->seq, "ts", (json_int_t)m->ts, "text", m->text);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    hub_offq_publish(m->hw, m->peer, text, strlen(text), on_queued, m);
    free(text);
}

static void on_oq_marked(redisReply *reply, const char *err, void *ud)
{
    pending_msg_t *m = pending_deref(ud);
    if (m == NULL || !m->queueing)
        return;
    /* unmarked, the recipient's next connect would not read its queue: better not to queue at all */
    if (err != NULL || reply == NULL || reply->type == REDIS_REPLY_ERROR)
        pending_answer(m, NULL, "unavailable");
    else
        publish_offline(m);
}

static void queue_offline(pending_msg_t *m)
{
    if (m->queueing)
        return;
    m->queueing = 1;
    if (m->timer != NULL)
        sio_timer_stop(m->timer);
    hub_t *h = m->hw->hub;
    if (h->offq == NULL) {
        pending_answer(m, NULL, "unavailable");
        return;
    }
    /* marks the recipient as having a queue, before there is one: see hub_chat_drain_if_queued */
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", h->cfg->token_ttl_s);
    pending_ref_t *ref = pending_ref(m);
    if (redis_command(m->hw->cmd, on_oq_marked, ref, "SET", keys_name(KEYS_OFFLINE_SEEN, m->peer).s, "1", "EX", ttl,
                      (const char *)NULL) != 0) {
        free(ref);
        pending_answer(m, NULL, "unavailable");
    }
}

/* Beyond this many timeouts, a live worker's silence is taken as loss (a pub/sub message can be dropped). */
#define MAX_DELIVERY_WAITS 10

static void on_listeners(redisReply *reply, const char *err, void *ud)
{
    pending_msg_t *m = pending_deref(ud);
    if (m == NULL || m->queueing) /* answered meanwhile */
        return;
    long long n = 0;
    if (err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_INTEGER)
        n = reply->element[1]->integer;
    if (n > 0)
        sio_timer_start(m->timer, (uint64_t)m->hw->hub->cfg->chat_delivery_timeout_ms);
    else
        queue_offline(m);
}

/*
 * No receipt in time. If the recipient's worker still listens, it has the
 * message or will answer with a nack (no client, or the client left before
 * its receipt), so the message waits longer instead of going to the queue as
 * well: under load, queueing what is about to be delivered doubled the work
 * and the deliveries (measured: 7,846 duplicates in a 20,000 msgs/s run) and
 * tipped the node over. Only a silent worker, or a wait past
 * MAX_DELIVERY_WAITS, sends it to the queue.
 */
static void on_delivery_timeout(sio_timer_t *t, void *ud)
{
    pending_msg_t *m = ud;
    if (++m->waits >= MAX_DELIVERY_WAITS || m->chan[0] == '\0') {
        queue_offline(m);
        return;
    }
    pending_ref_t *ref = pending_ref(m);
    if (redis_command(m->hw->cmd, on_listeners, ref, "PUBSUB", "NUMSUB", m->chan, (const char *)NULL) != 0) {
        free(ref);
        queue_offline(m);
    }
}

/* The answer to PUBLISH: how many workers listen on the recipient's channel. */
static void on_published(redisReply *reply, const char *err, void *ud)
{
    pending_msg_t *m = pending_deref(ud);
    /* nobody listens there (its node died): no need to wait for a receipt that cannot come */
    if (m != NULL && err == NULL && reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        queue_offline(m);
}

/* Sends the message to the recipient's worker, or straight to its queue when it is nowhere. */
static void deliver(pending_msg_t *m, const char *peer_channel)
{
    if (peer_channel == NULL || peer_channel[0] == '\0') {
        queue_offline(m);
        return;
    }
    note_t *n = note_new(NOTE_MSG, m->peer);
    note_msg_t *nm = &n->u.msg;
    buf_copy_str(nm->sid, sizeof(nm->sid), m->sid);
    buf_copy_str(nm->id, sizeof(nm->id), m->id);
    buf_copy_str(nm->sender, sizeof(nm->sender), m->sender);
    buf_copy_str(nm->from, sizeof(nm->from), m->hw->channel);
    nm->seq = m->seq;
    nm->ts = m->ts;
    nm->text = buf_xstrndup(m->text, strlen(m->text));
    int rc = 0;
    if (!hub_bus_send_note(m->hw, peer_channel, n)) {
        char *text = note_encode(n);
        pending_ref_t *ref = pending_ref(m);
        rc = redis_command(m->hw->cmd, on_published, ref, "PUBLISH", peer_channel, text, (const char *)NULL);
        if (rc != 0)
            free(ref);
        free(text);
        note_free(n);
    }
    if (rc != 0) {
        queue_offline(m);
        return;
    }
    buf_copy_str(m->chan, sizeof(m->chan), peer_channel);
    m->timer = sio_timer_new(m->hw->w, on_delivery_timeout, m);
    sio_timer_start(m->timer, (uint64_t)m->hw->hub->cfg->chat_delivery_timeout_ms);
}

/* ---- client events ---- */

typedef struct send_call {
    hub_conn_t *c;
    int64_t ack_id;
    char sid[GUEST_ID_LEN + 1], id[MAX_ID_LEN + 1];
    char *text;
} send_call_t;

static void send_call_free(send_call_t *sc)
{
    hub_conn_unref(sc->c);
    free(sc->text);
    free(sc);
}

static void on_numbered(const chat_result_t *r, void *ud)
{
    send_call_t *sc = ud;
    hub_conn_t *c = sc->c;
    c->hw->sends_waiting--;
    sio_socket_t *s = hub_chat_socket(c);
    if (r->err != NULL) {
        if (strcmp(r->err, "not_in_session") != 0)
            metrics_inc(c->hw->hub->m.msgs_unavailable);
        if (s != NULL)
            hub_ack_error(s, sc->ack_id, r->err);
        send_call_free(sc);
        return;
    }
    int64_t seq = r->seq, ts = r->ts;
    const char *peer = r->peer, *chan = r->peer_channel;
    if (r->dup && strcmp(r->msg_status, "pending") != 0) { /* settled already: the same answer again */
        if (s != NULL)
            ack_settled(s, sc->ack_id, sc->id, seq, ts, r->msg_status);
        send_call_free(sc);
        return;
    }
    hub_worker_t *hw = c->hw;
    char key[sizeof(((pending_msg_t *)0)->key)];
    snprintf(key, sizeof(key), "%s|%s|%s", sc->sid, c->gid, sc->id);
    pending_msg_t *m = hub_pending_find(hw, key);
    if (m != NULL) { /* the first attempt is still under way here: answer both with its outcome */
        if (m->nacks < MAX_ACKS)
            m->acks[m->nacks++] = sc->ack_id;
        send_call_free(sc);
        return;
    }
    m = buf_xcalloc(1, sizeof(*m));
    buf_copy_str(m->key, sizeof(m->key), key);
    buf_copy_str(m->sid, sizeof(m->sid), sc->sid);
    buf_copy_str(m->sender, sizeof(m->sender), c->gid);
    buf_copy_str(m->peer, sizeof(m->peer), peer);
    buf_copy_str(m->id, sizeof(m->id), sc->id);
    m->c = hub_conn_ref(c);
    m->hw = hw;
    m->acks[m->nacks++] = sc->ack_id;
    m->seq = seq;
    m->ts = ts;
    m->text = sc->text;
    sc->text = NULL;
    hub_pending_insert(hw, m);
    send_call_free(sc);
    deliver(m, chan);
}

/* The first argument as an object (a new reference), or NULL. */
static json_t *payload_of(json_t *args)
{
    json_t *a = json_array_get(args, 0);
    return json_is_object(a) ? json_incref(a) : NULL;
}

static const char *session_of(json_t *p)
{
    const char *sid = json_string_value(json_object_get(p, "sessionId"));
    return sid != NULL && guest_id_valid(sid) ? sid : NULL;
}

static void on_message(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    hub_t *h = ud;
    hub_conn_t *c = hub_conn_of(s);
    if (c == NULL) {
        hub_ack_error(s, ack_id, "not_authenticated");
        return;
    }
    metrics_inc(h->m.msgs_in);
    json_t *p = payload_of(args);
    json_t *jtext = json_object_get(p, "text");
    const char *sid = session_of(p), *id = json_string_value(json_object_get(p, "id"));
    const char *text = json_string_value(jtext);
    size_t idlen = id != NULL ? strlen(id) : 0, tlen = text != NULL ? json_string_length(jtext) : 0;
    const char *problem = NULL;
    if (p == NULL || id == NULL || idlen < 1 || idlen > MAX_ID_LEN || text == NULL || tlen < 1 ||
        !chat_utf8_valid(id, idlen) || !chat_utf8_valid(text, tlen) || strchr(id, '|') != NULL)
        problem = "invalid";
    else if (sid == NULL)
        problem = "not_in_session";
    else if (tlen > MAX_TEXT)
        problem = "too_long";
    else if (c->hw->sends_waiting >= MAX_SENDS_WAITING) {
        /* Redis is behind: refuse now (the client retries with the same id) rather than queue without bound */
        problem = "unavailable";
        metrics_inc(h->m.msgs_unavailable);
    } else {
        uint64_t now = sio_worker_now(c->hw->w);
        if (!bucket_take(&c->msg_bucket, h->cfg->chat_rate_guest, now) ||
            !limits_take(h->ip_limits, c->ip, LIMITS_CHAT, now_mono_ms())) {
            problem = "rate_limited";
            metrics_inc(h->m.chat_rate_limited);
        }
    }
    if (problem != NULL || sid == NULL || id == NULL || text == NULL) { /* the last three for the analyzers */
        hub_ack_error(s, ack_id, problem != NULL ? problem : "invalid");
        json_decref(p);
        return;
    }
    send_call_t *sc = buf_xcalloc(1, sizeof(*sc));
    sc->c = hub_conn_ref(c);
    sc->ack_id = ack_id;
    buf_copy_str(sc->sid, sizeof(sc->sid), sid);
    buf_copy_str(sc->id, sizeof(sc->id), id);
    sc->text = buf_xmalloc(tlen + 1);
    memcpy(sc->text, text, tlen + 1);
    json_decref(p);
    if (chat_send(c->hw->cmd, sc->sid, c->gid, sc->id, h->cfg->token_ttl_s, now_wall_ms(), on_numbered, sc) != 0) {
        hub_ack_error(s, ack_id, "unavailable");
        send_call_free(sc);
        return;
    }
    c->hw->sends_waiting++;
}

/* An answer that only needs ok, or the error, on the sender's /chat socket. */
typedef struct simple_call {
    hub_conn_t *c;
    int64_t ack_id;
    int kind;
    char sid[GUEST_ID_LEN + 1];
    char *reason;
    note_kind_t relay;   /* CALL_RELAY: NOTE_TYPING or NOTE_READ */
    int64_t relay_value; /* typing (0, 1) or upToSeq */
} simple_call_t;

enum { CALL_RELAY, CALL_LEAVE, CALL_REPORT, CALL_EXPIRE };

static simple_call_t *simple_new(hub_conn_t *c, int64_t ack_id, int kind, const char *sid)
{
    simple_call_t *sc = buf_xcalloc(1, sizeof(*sc));
    sc->c = hub_conn_ref(c);
    sc->ack_id = ack_id;
    sc->kind = kind;
    buf_copy_str(sc->sid, sizeof(sc->sid), sid);
    return sc;
}

static void simple_free(simple_call_t *sc)
{
    hub_conn_unref(sc->c);
    free(sc->reason);
    free(sc);
}

static void on_simple(const chat_result_t *r, void *ud)
{
    simple_call_t *sc = ud;
    sio_socket_t *s = hub_chat_socket(sc->c);
    if (r->err == NULL && sc->kind != CALL_RELAY) {
        hub_t *h = sc->c->hw->hub;
        int64_t now = now_wall_ms();
        static const char *const reasons[] = {"", "left", "reported", "expired"};
        if (sc->c->session_end != NULL && strcmp(sc->c->session_id, sc->sid) == 0)
            sio_timer_stop(sc->c->session_end);
        hub_history_session_end(h, sc->sid, now, reasons[sc->kind]);
        if (sc->kind == CALL_REPORT) {
            char rid[GUEST_ID_LEN + 1];
            guest_new_id(rid);
            hub_history_report(h, rid, sc->sid, sc->c->gid, sc->reason, now);
            metrics_inc(h->m.reports);
        }
    }
    /*
     * Relayed from here, not by chat.lua: the note to a worker of this node
     * then follows this worker's receipts on the same path, so a peer's
     * chat:read never overtakes the chat:delivered and ack it is about.
     */
    if (r->err == NULL && sc->kind == CALL_RELAY && r->peer_channel[0] != '\0') {
        note_t *n = note_new(sc->relay, r->peer);
        if (sc->relay == NOTE_TYPING) {
            buf_copy_str(n->u.typing.sid, sizeof(n->u.typing.sid), sc->sid);
            n->u.typing.typing = sc->relay_value != 0;
        } else {
            buf_copy_str(n->u.read.sid, sizeof(n->u.read.sid), sc->sid);
            n->u.read.up_to_seq = sc->relay_value;
        }
        hub_note_send(sc->c->hw, r->peer_channel, n);
    }
    if (s != NULL) {
        if (r->err != NULL)
            hub_ack_error(s, sc->ack_id, r->err);
        else
            hub_ack(s, sc->ack_id, json_pack("{s:b}", "ok", 1));
    }
    simple_free(sc);
}

static void on_typing(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    hub_t *h = ud;
    hub_conn_t *c = hub_conn_of(s);
    json_t *p = payload_of(args);
    const char *sid = session_of(p);
    json_t *typing = json_object_get(p, "typing");
    if (c == NULL || sid == NULL || !json_is_boolean(typing)) {
        hub_ack_error(s, ack_id,
                      c == NULL                  ? "not_authenticated"
                      : sid == NULL && p != NULL ? "not_in_session"
                                                 : "invalid");
        json_decref(p);
        return;
    }
    if (!bucket_take(&c->typing_bucket, h->cfg->typing_rate_guest, sio_worker_now(c->hw->w))) {
        metrics_inc(h->m.chat_rate_limited);
        hub_ack_error(s, ack_id, "rate_limited");
        json_decref(p);
        return;
    }
    simple_call_t *sc = simple_new(c, ack_id, CALL_RELAY, sid);
    sc->relay = NOTE_TYPING;
    sc->relay_value = json_is_true(typing);
    json_decref(p);
    if (chat_relay(c->hw->cmd, sc->sid, c->gid, on_simple, sc) != 0) {
        hub_ack_error(s, ack_id, "unavailable");
        simple_free(sc);
    }
}

static void on_read(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    hub_conn_t *c = hub_conn_of(s);
    json_t *p = payload_of(args);
    const char *sid = session_of(p);
    json_t *up = json_object_get(p, "upToSeq");
    if (c == NULL || sid == NULL || !json_is_integer(up) || json_integer_value(up) < 1) {
        hub_ack_error(s, ack_id,
                      c == NULL                  ? "not_authenticated"
                      : sid == NULL && p != NULL ? "not_in_session"
                                                 : "invalid");
        json_decref(p);
        return;
    }
    simple_call_t *sc = simple_new(c, ack_id, CALL_RELAY, sid);
    sc->relay = NOTE_READ;
    sc->relay_value = json_integer_value(up);
    json_decref(p);
    if (chat_relay(c->hw->cmd, sc->sid, c->gid, on_simple, sc) != 0) {
        hub_ack_error(s, ack_id, "unavailable");
        simple_free(sc);
    }
}

static void end_session(sio_socket_t *s, json_t *args, int64_t ack_id, hub_t *h, int kind)
{
    hub_conn_t *c = hub_conn_of(s);
    json_t *p = payload_of(args);
    const char *sid = session_of(p);
    const char *reason = json_string_value(json_object_get(p, "reason"));
    size_t rlen = reason != NULL ? strlen(reason) : 0;
    const char *problem = NULL;
    if (c == NULL)
        problem = "not_authenticated";
    else if (p == NULL)
        problem = "invalid";
    else if (kind == CALL_REPORT && (rlen < 1 || rlen > MAX_REASON || !chat_utf8_valid(reason, rlen)))
        problem = rlen > MAX_REASON ? "too_long" : "invalid";
    else if (sid == NULL)
        problem = "not_in_session";
    if (problem != NULL) {
        hub_ack_error(s, ack_id, problem);
        json_decref(p);
        return;
    }
    simple_call_t *sc = simple_new(c, ack_id, kind, sid);
    if (reason != NULL)
        sc->reason = strdup(reason);
    json_decref(p);
    if (chat_end(c->hw->cmd, sc->sid, c->gid, kind == CALL_REPORT ? "reported" : "left", h->cfg->token_ttl_s, on_simple,
                 sc) != 0) {
        hub_ack_error(s, ack_id, "unavailable");
        simple_free(sc);
    }
}

static void on_leave(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    end_session(s, args, ack_id, ud, CALL_LEAVE);
}

static void on_report(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    end_session(s, args, ack_id, ud, CALL_REPORT);
}

/* ---- the end of a session by time ---- */

static void on_session_expired(sio_timer_t *t, void *ud)
{
    hub_conn_t *c = ud;
    if (c->root == NULL || c->session_id[0] == '\0')
        return;
    hub_t *h = c->hw->hub;
    simple_call_t *sc = simple_new(c, -1, CALL_EXPIRE, c->session_id);
    if (chat_end(c->hw->cmd, c->session_id, c->gid, "expired", h->cfg->token_ttl_s, on_simple, sc) != 0) {
        simple_free(sc);
        sio_timer_start(t, 1000); /* Redis is down: the session ends when it can */
    }
}

void hub_chat_session_known(hub_conn_t *c, const char *sid, int64_t started_ms)
{
    if (sid == NULL)
        return;
    buf_copy_str(c->session_id, sizeof(c->session_id), sid);
    int64_t now = now_wall_ms();
    int64_t end = started_ms + (int64_t)c->hw->hub->cfg->chat_session_ttl_s * 1000;
    if (c->session_end == NULL)
        c->session_end = sio_timer_new(c->hw->w, on_session_expired, c);
    sio_timer_start(c->session_end, end > now ? (uint64_t)(end - now) : 0);
}

/* ---- notifications ---- */

/* The outcome of a message this worker sent for `c` (NULL when gone): delivered, or not handed over. */
static void on_settled(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    const note_outcome_t *o = &n->u.outcome;
    char key[GUEST_ID_LEN * 2 + MAX_ID_LEN + 3];
    snprintf(key, sizeof(key), "%s|%s|%s", o->sid, n->g, o->id);
    pending_msg_t *pm = hub_pending_find(hw, key);
    if (n->kind == NOTE_NACK) {
        if (pm != NULL)
            queue_offline(pm);
        return;
    }
    sio_socket_t *s = hub_chat_socket(c);
    if (s != NULL) {
        buf_t b = BUF_INIT;
        hub_chat_payload_head(&b, o->sid, o->id, o->seq);
        buf_append_char(&b, '}');
        sio_socket_emit_text(s, "chat:delivered", b.base, b.len, NULL, NULL);
        buf_free(&b);
    }
    if (pm != NULL && !pm->queueing)
        pending_answer(pm, "delivered", NULL);
}

/* chat:typing or chat:read for a guest of this worker */
static void on_relayed(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    sio_socket_t *s = hub_chat_socket(c);
    if (s == NULL)
        return;
    int typing = n->kind == NOTE_TYPING;
    const char *sid = typing ? n->u.typing.sid : n->u.read.sid;
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"sessionId\":");
    buf_append_json_string(&b, sid, strlen(sid));
    if (typing) {
        buf_append_str(&b, n->u.typing.typing ? ",\"typing\":true}" : ",\"typing\":false}");
    } else {
        buf_append_str(&b, ",\"upToSeq\":");
        buf_append_u64(&b, (uint64_t)n->u.read.up_to_seq);
        buf_append_char(&b, '}');
    }
    sio_socket_emit_text(s, typing ? "chat:typing" : "chat:read", b.base, b.len, NULL, NULL);
    buf_free(&b);
}

static void on_queued_note(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    if (hub_chat_socket(c) != NULL)
        hub_chat_drain_queue(c);
}

static void on_left(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    if (c->session_end != NULL && strcmp(c->session_id, n->u.left.sid) == 0)
        sio_timer_stop(c->session_end);
    json_t *ev = json_pack("{s:s,s:s}", "sessionId", n->u.left.sid, "reason", n->u.left.reason);
    hub_emit(c, "/", "user-left", ev);
    json_decref(ev);
}

static void on_peer(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    json_t *ev = json_pack("{s:s,s:b}", "sessionId", n->u.peer.sid, "online", n->u.peer.online);
    hub_emit(c, "/", "peer-status", ev);
    json_decref(ev);
}

/* The pending messages of a stopping worker are answered unavailable (the client may re-send). */
void hub_chat_worker_stop(hub_worker_t *hw)
{
    for (pending_msg_t *m; (m = hub_pending_any(hw)) != NULL;)
        pending_answer(m, NULL, "unavailable");
    hub_pending_dispose(hw);
}

void hub_chat_attach(hub_t *h, sio_server_t *srv)
{
    sio_nsp_t *n = sio_server_of(srv, "/chat");
    sio_nsp_on(n, "chat:message", on_message, h);
    sio_nsp_on(n, "chat:typing", on_typing, h);
    sio_nsp_on(n, "chat:read", on_read, h);
    sio_nsp_on(n, "chat:leave", on_leave, h);
    sio_nsp_on(n, "chat:report", on_report, h);
    hub_bus_on(h, NOTE_MSG, hub_chat_on_msg_note, false); /* not here: a nack goes back */
    hub_bus_on(h, NOTE_DELIVERED, on_settled, false);     /* the sender may have gone: its pending still waits */
    hub_bus_on(h, NOTE_NACK, on_settled, false);
    hub_bus_on(h, NOTE_TYPING, on_relayed, true);
    hub_bus_on(h, NOTE_READ, on_relayed, true);
    hub_bus_on(h, NOTE_QUEUED, on_queued_note, true);
    hub_bus_on(h, NOTE_LEFT, on_left, true);
    hub_bus_on(h, NOTE_PEER, on_peer, true);
}
