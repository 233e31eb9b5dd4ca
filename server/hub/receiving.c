/*
 * Namespace /chat, the recipient's side: a message handed to the client
 * with an ack id, whose answer is the receipt. The receipt is stored in
 * Redis and told to the origin, a nack goes back when the client is not
 * here, and each connection keeps its messages in flight so that a queued
 * copy of one is never handed over twice.
 */
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "internal.h"
#include "../now/now.h"

#define MAX_ID_LEN HUB_MAX_ID_LEN

typedef struct inbound {
    struct inbound *next, **pprev; /* the connection's in-flight list */
    hub_conn_t *c;
    char sid[GUEST_ID_LEN + 1], sender[GUEST_ID_LEN + 1], id[MAX_ID_LEN + 1];
    char from[160];
    char *text;
    int64_t seq, ts;
    uint64_t offq_tag; /* from the offline queue: ack it there once the client acked */
} inbound_t;

static void inbound_free(inbound_t *in)
{
    *in->pprev = in->next;
    if (in->next != NULL)
        in->next->pprev = in->pprev;
    hub_conn_unref(in->c);
    free(in->text);
    free(in);
}

/* Tells the origin that the message could not be handed over here. */
static void send_nack(hub_worker_t *hw, const char *from, const char *sid, const char *sender, const char *id)
{
    if (from == NULL || from[0] == '\0')
        return;
    hub_note_send(hw, from, hub_note_outcome(NOTE_NACK, sender, sid, id, 0));
}

/*
 * A receipt on its way into Redis, with the message's entry in the history's
 * write-ahead log (chat.lua "delivered"). It is retried until Redis has it:
 * a receipt that was not stored would leave the sender to re-send, and the
 * message to come twice, though no node died. Only then is the offline
 * queue's copy acked and, when this node holds the sender, its worker told.
 */
typedef struct receipt {
    struct receipt *next, **pprev; /* the worker's receipts not stored yet */
    hub_worker_t *hw;
    char from[160], sid[GUEST_ID_LEN + 1], sender[GUEST_ID_LEN + 1], id[MAX_ID_LEN + 1];
    char *text;
    int64_t seq, ts, delivered_ms;
    uint64_t offq_tag;
    int tell_origin; /* the origin is a worker of this node: told from here, not by the script */
    sio_timer_t *retry;
} receipt_t;

#define RECEIPT_RETRY_MS 250

static void receipt_free(receipt_t *rc)
{
    *rc->pprev = rc->next;
    if (rc->next != NULL)
        rc->next->pprev = rc->pprev;
    sio_timer_free(rc->retry);
    free(rc->text);
    free(rc);
}

static void receipt_store(receipt_t *rc);

static void on_receipt_retry(sio_timer_t *t, void *ud)
{
    receipt_store(ud);
}

static void receipt_later(receipt_t *rc)
{
    metrics_inc(rc->hw->hub->m.receipt_retries);
    if (rc->retry == NULL)
        rc->retry = sio_timer_new(rc->hw->w, on_receipt_retry, rc);
    sio_timer_start(rc->retry, RECEIPT_RETRY_MS);
}

static void on_receipt_stored(const chat_result_t *r, void *ud)
{
    receipt_t *rc = ud;
    hub_worker_t *hw = rc->hw;
    if (r->err != NULL) {
        if (hw->stopping) {
            /* the broker keeps its copy unacked: another node hands it over */
            receipt_free(rc);
            return;
        }
        receipt_later(rc);
        return;
    }
    /* "gone": the message's record expired, and nobody waits for it any more */
    if (rc->tell_origin && !r->gone)
        hub_note_send(hw, rc->from, hub_note_outcome(NOTE_DELIVERED, rc->sender, rc->sid, rc->id, rc->seq));
    if (rc->offq_tag != 0)
        hub_offq_ack(hw, rc->offq_tag);
    receipt_free(rc);
}

static void receipt_store(receipt_t *rc)
{
    if (chat_delivered(rc->hw->cmd, rc->sid, rc->sender, rc->id, rc->seq, rc->ts, rc->text, rc->delivered_ms,
                       rc->tell_origin, rc->hw->hub->cfg->token_ttl_s, on_receipt_stored, rc) != 0)
        receipt_later(rc); /* Redis is down: the client reconnects, the timer tries again */
}

/* Marks a message delivered and logs it for the history, as one step in Redis. */
static void store_receipt(hub_worker_t *hw, const inbound_t *in)
{
    receipt_t *rc = buf_xcalloc(1, sizeof(*rc));
    rc->hw = hw;
    rc->next = hw->receipts;
    rc->pprev = &hw->receipts;
    if (hw->receipts != NULL)
        hw->receipts->pprev = &rc->next;
    hw->receipts = rc;
    rc->seq = in->seq;
    rc->ts = in->ts;
    rc->delivered_ms = now_wall_ms();
    rc->offq_tag = in->offq_tag;
    rc->tell_origin = in->from[0] != '\0' && hub_bus_index(hw->hub, in->from) >= 0;
    buf_copy_str(rc->from, sizeof(rc->from), in->from);
    buf_copy_str(rc->sid, sizeof(rc->sid), in->sid);
    buf_copy_str(rc->sender, sizeof(rc->sender), in->sender);
    buf_copy_str(rc->id, sizeof(rc->id), in->id);
    rc->text = buf_xstrndup(in->text, strlen(in->text));
    receipt_store(rc);
}

void hub_receipts_stop(hub_worker_t *hw)
{
    while (hw->receipts != NULL)
        receipt_free(hw->receipts);
}

static void on_client_receipt(sio_socket_t *s, json_t *args, const sio_bin_t *bins, size_t nbins, void *ud)
{
    inbound_t *in = ud;
    hub_worker_t *hw = in->c->hw;
    if (args == NULL) { /* the connection ended first: not delivered */
        if (in->offq_tag != 0)
            hub_offq_release(hw, in->offq_tag);
        else
            send_nack(hw, in->from, in->sid, in->sender, in->id);
        inbound_free(in);
        return;
    }
    store_receipt(hw, in); /* acks the queue's copy, if any, once stored */
    inbound_free(in);
}

/*
 * A copy from the queue of a message already with the client and awaiting
 * its receipt (it was queued after it had been handed over): one delivery;
 * its receipt settles both. Live messages never come twice, so only queued
 * copies look.
 */
int hub_chat_settle_with_inflight(hub_conn_t *c, const char *sid, const char *sender, const char *id, uint64_t offq_tag)
{
    for (inbound_t *cur = c->inflight; cur != NULL; cur = cur->next)
        if (strcmp(cur->id, id) == 0 && strcmp(cur->sender, sender) == 0 && strcmp(cur->sid, sid) == 0) {
            if (cur->offq_tag == 0)
                cur->offq_tag = offq_tag;
            else
                hub_offq_release(c->hw, offq_tag);
            return 1;
        }
    return 0;
}

int hub_chat_hand_over(hub_conn_t *c, const char *sid, const char *id, const char *sender, const char *text,
                       int64_t seq, int64_t ts, const char *from, uint64_t offq_tag)
{
    sio_socket_t *s = hub_chat_socket(c);
    if (s == NULL || sid == NULL || id == NULL || sender == NULL || text == NULL)
        return -1;
    if (offq_tag != 0 && hub_chat_settle_with_inflight(c, sid, sender, id, offq_tag))
        return 0;
    inbound_t *in = buf_xcalloc(1, sizeof(*in));
    in->c = hub_conn_ref(c);
    in->next = c->inflight;
    in->pprev = &c->inflight;
    if (c->inflight != NULL)
        c->inflight->pprev = &in->next;
    c->inflight = in;
    buf_copy_str(in->sid, sizeof(in->sid), sid);
    buf_copy_str(in->sender, sizeof(in->sender), sender);
    buf_copy_str(in->id, sizeof(in->id), id);
    buf_copy_str(in->from, sizeof(in->from), from != NULL ? from : "");
    size_t tlen = strlen(text);
    in->text = buf_xstrndup(text, tlen);
    in->seq = seq;
    in->ts = ts;
    in->offq_tag = offq_tag;
    /* {"sessionId","id","seq","text","ts"}, written without a JSON tree: every message passes here */
    buf_t b = BUF_INIT;
    buf_reserve(&b, 160 + tlen);
    hub_chat_payload_head(&b, sid, id, seq);
    buf_append_str(&b, ",\"text\":");
    buf_append_json_string(&b, text, tlen);
    buf_append_str(&b, ",\"ts\":");
    buf_append_u64(&b, (uint64_t)ts);
    buf_append_char(&b, '}');
    sio_socket_emit_text(s, "chat:message", b.base, b.len, on_client_receipt, in);
    buf_free(&b);
    metrics_inc(c->hw->hub->m.msgs_out);
    return 0;
}

void hub_chat_on_msg_note(hub_worker_t *hw, hub_conn_t *c, const note_t *n)
{
    const note_msg_t *m = &n->u.msg;
    if (c == NULL || hub_chat_hand_over(c, m->sid, m->id, m->sender, m->text, m->seq, m->ts, m->from, 0) != 0)
        send_nack(hw, m->from, m->sid, m->sender, m->id);
}
