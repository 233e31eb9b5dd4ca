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
    hub_note_send(hw, from, hub_note_new(HUB_NOTE_NACK, sender, sid, sender, id, 0));
}

/* A receipt stored in Redis quietly: the origin, a worker of this node, hears of it from here. */
typedef struct receipt {
    hub_worker_t *hw;
    char from[160], sid[GUEST_ID_LEN + 1], sender[GUEST_ID_LEN + 1], id[MAX_ID_LEN + 1];
    int64_t seq;
} receipt_t;

static void on_receipt_stored(const redis_strings_t *r, void *ud)
{
    receipt_t *rc = ud;
    /* "gone": the message's record expired, and nobody waits for it any more */
    if (r->err == NULL && strcmp(r->status, "ok") == 0)
        hub_note_send(rc->hw, rc->from,
                      hub_note_new(HUB_NOTE_DELIVERED, rc->sender, rc->sid, rc->sender, rc->id, rc->seq));
    free(rc);
}

/* Marks a message delivered; its origin hears of it after Redis stored that, as it would from chat.lua. */
static void store_receipt(hub_worker_t *hw, const inbound_t *in)
{
    if (in->from[0] == '\0' || hub_bus_index(hw->hub, in->from) < 0) {
        chat_delivered(hw->cmd, in->sid, in->sender, in->id, in->seq, in->ts, 0, NULL, NULL);
        return;
    }
    receipt_t *rc = buf_xcalloc(1, sizeof(*rc));
    rc->hw = hw;
    rc->seq = in->seq;
    buf_copy_str(rc->from, sizeof(rc->from), in->from);
    buf_copy_str(rc->sid, sizeof(rc->sid), in->sid);
    buf_copy_str(rc->sender, sizeof(rc->sender), in->sender);
    buf_copy_str(rc->id, sizeof(rc->id), in->id);
    if (chat_delivered(hw->cmd, in->sid, in->sender, in->id, in->seq, in->ts, 1, on_receipt_stored, rc) != 0)
        free(rc);
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
    store_receipt(hw, in);
    hub_history_message(hw->hub, in->sid, in->seq, in->id, in->sender, in->text, in->ts, hub_wall_ms());
    if (in->offq_tag != 0)
        hub_offq_ack(hw, in->offq_tag);
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

void hub_chat_on_msg_note(hub_worker_t *hw, hub_conn_t *c, const hub_chat_note_t *n)
{
    if (c == NULL || hub_chat_hand_over(c, n->sid, n->id, n->sender, n->text, n->seq, n->ts, n->from, 0) != 0)
        send_nack(hw, n->from, n->sid, n->sender, n->id);
}
