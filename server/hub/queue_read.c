/*
 * The recipient's offline queue, read when the recipient is here: on a /chat
 * connect (only for a guest that ever had a message queued) and on a
 * "queued" notice. Each queued message is checked against its status first:
 * a copy whose receipt came after all is acked away, not delivered again.
 */
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "../log/log.h"
#include "../keys/keys.h"
#include "internal.h"

#define FETCH_MAX 500

/* A queued message on its way to the client, once its status is known. */
typedef struct fetched {
    hub_conn_t *c;
    uint64_t tag;
    json_t *m;
} fetched_t;

static void hand_over_fetched(fetched_t *f)
{
    json_t *m = f->m;
    if (f->c->root == NULL ||
        hub_chat_hand_over(f->c, json_string_value(json_object_get(m, "sessionId")),
                           json_string_value(json_object_get(m, "id")), json_string_value(json_object_get(m, "sender")),
                           json_string_value(json_object_get(m, "text")), json_integer_value(json_object_get(m, "seq")),
                           json_integer_value(json_object_get(m, "ts")), NULL, f->tag) != 0)
        hub_offq_release(f->c->hw, f->tag);
}

static void on_fetched_state(const chat_result_t *r, void *ud)
{
    fetched_t *f = ud;
    /*
     * The receipt can beat the delivery timeout after the message was queued:
     * then it is in the queue although the client has it. Dropping it here
     * keeps the second delivery to the case the protocol allows (a node died).
     */
    if (r->err == NULL && !r->gone && strcmp(r->msg_status, "delivered") == 0) {
        hub_offq_ack(f->c->hw, f->tag);
        metrics_inc(f->c->hw->hub->m.msgs_queued_delivered);
    } else {
        hand_over_fetched(f);
    }
    json_decref(f->m);
    hub_conn_unref(f->c);
    free(f);
}

static void on_fetched(sio_worker_t *w, uint64_t tag, const void *body, size_t len, const char *err, void *ud)
{
    hub_conn_t *c = ud;
    if (body == NULL) { /* the end of the batch */
        c->fetching = 0;
        if (c->fetch_again && c->root != NULL) {
            c->fetch_again = 0;
            hub_chat_drain_queue(c);
        }
        hub_conn_unref(c);
        return;
    }
    json_error_t jerr;
    json_t *m = json_loadb(body, len, 0, &jerr);
    const char *sid = json_string_value(json_object_get(m, "sessionId"));
    const char *sender = json_string_value(json_object_get(m, "sender"));
    const char *id = json_string_value(json_object_get(m, "id"));
    if (m == NULL || sid == NULL || sender == NULL || id == NULL) {
        log_error("unreadable queued message dropped", json_pack("{s:s}", "error", m == NULL ? jerr.text : "fields"));
        json_decref(m);
        hub_offq_ack(c->hw, tag);
        return;
    }
    /*
     * Still with the client, awaiting its receipt: settled by that receipt. Checked
     * now, not after the status read: a receipt that came in between would leave
     * neither the in-flight entry nor (yet) the "delivered" status to find.
     */
    if (c->root != NULL && hub_chat_settle_with_inflight(c, sid, sender, id, tag)) {
        json_decref(m);
        return;
    }
    fetched_t *f = buf_xcalloc(1, sizeof(*f));
    f->c = hub_conn_ref(c);
    f->tag = tag;
    f->m = m;
    /* answers come back in order on the worker's one connection, so the messages keep theirs */
    if (chat_state(c->hw->cmd, sid, sender, id, on_fetched_state, f) != 0) {
        hand_over_fetched(f); /* Redis cannot say: deliver (at least once) */
        json_decref(m);
        hub_conn_unref(c);
        free(f);
    }
}

static void on_oq_exists(redisReply *reply, const char *err, void *ud)
{
    hub_conn_t *c = ud;
    /* when Redis cannot say, read the queue: a needless fetch is cheaper than a missed message */
    int none = err == NULL && reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0;
    if (!none && c->root != NULL)
        hub_chat_drain_queue(c);
    hub_conn_unref(c);
}

/*
 * On a /chat connect: most guests never had a message queued, and asking the
 * broker for a queue that does not exist costs it an error and a channel
 * (measured: about 30% of connects/s). The flag is set before the first
 * publish and lives as long as a token, so it never says "none" for a guest
 * that has a queue; a message queued after the check announces itself with
 * the "queued" notice.
 */
void hub_chat_drain_if_queued(hub_conn_t *c)
{
    hub_conn_ref(c);
    if (redis_command(c->hw->cmd, on_oq_exists, c, "EXISTS", keys_name(KEYS_OFFLINE_SEEN, c->gid).s,
                      (const char *)NULL) != 0) {
        hub_chat_drain_queue(c);
        hub_conn_unref(c);
    }
}

void hub_chat_drain_queue(hub_conn_t *c)
{
    if (c->fetching) {
        c->fetch_again = 1;
        return;
    }
    c->fetching = 1;
    hub_offq_fetch(c->hw, c->gid, FETCH_MAX, on_fetched, hub_conn_ref(c));
}
