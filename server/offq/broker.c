/*
 * offq's AMQP side, on the offq thread only: the connection and its three
 * channels, queue declarations (cached), publishes with confirms, fetches
 * with basic.get, acks and releases of the messages a fetch reserved.
 *
 * librabbitmq keeps frames that arrive during an RPC but belong elsewhere
 * (a confirm arriving while a queue.declare waits for its reply) and hands
 * them out first from amqp_simple_wait_frame_noblock, so offq__pump sees
 * every confirm whatever the thread was doing when it came.
 */
#include "internal.h"

#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../buf/buf.h"
#include "../log/log.h"
#include "../now/now.h"

static void oom(void)
{
    fprintf(stderr, "offq: out of memory in librabbitmq\n");
    abort();
}

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static void describe(amqp_rpc_reply_t r, char *out, size_t outlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(out, outlen, "ok");
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(out, outlen, "%s", amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            snprintf(out, outlen, "connection closed by the broker: %u %.*s", c->reply_code, (int)c->reply_text.len,
                     (const char *)c->reply_text.bytes);
            return;
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            snprintf(out, outlen, "channel closed by the broker: %u %.*s", c->reply_code, (int)c->reply_text.len,
                     (const char *)c->reply_text.bytes);
            return;
        }
        snprintf(out, outlen, "unexpected method 0x%08x", r.reply.id);
        return;
    default:
        snprintf(out, outlen, "no reply");
        return;
    }
}

/* ---- the declared-names cache ---- */

static size_t name_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return (size_t)(h % OFFQ_CACHE_BUCKETS);
}

/* Finds `name`; an entry that expired is removed on the way. */
static offq_name_t **cache_find(offq_t *q, const char *name)
{
    offq_name_t **pp = &q->names[name_hash(name)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0)
            return pp;
    return NULL;
}

static void cache_drop(offq_t *q, const char *name)
{
    offq_name_t **pp = cache_find(q, name);
    if (pp == NULL)
        return;
    offq_name_t *n = *pp;
    *pp = n->next;
    free(n);
    q->nnames--;
}

static int cache_has(offq_t *q, const char *name, uint64_t now)
{
    offq_name_t **pp = cache_find(q, name);
    if (pp == NULL)
        return 0;
    if ((*pp)->until_ms > now)
        return 1;
    cache_drop(q, name);
    return 0;
}

void offq__cache_clear(offq_t *q)
{
    for (size_t i = 0; i < OFFQ_CACHE_BUCKETS; i++) {
        while (q->names[i] != NULL) {
            offq_name_t *n = q->names[i];
            q->names[i] = n->next;
            free(n);
        }
    }
    q->nnames = 0;
}

static void cache_put(offq_t *q, const char *name, uint64_t now)
{
    if (cache_has(q, name, now))
        return;
    /* crude but bounded: a full cache starts over, costing one declare per queue */
    if (q->nnames >= OFFQ_CACHE_MAX_NAMES)
        offq__cache_clear(q);
    size_t len = strlen(name);
    offq_name_t *n = buf_xmalloc(sizeof(*n) + len + 1);
    memcpy(n->name, name, len + 1);
    n->until_ms = now + q->cache_ms;
    size_t b = name_hash(name);
    n->next = q->names[b];
    q->names[b] = n;
    q->nnames++;
}

/* ---- delivery tags reserved by fetches on OFFQ_CH_GET ---- */

static void held_add(offq_t *q, uint64_t dtag)
{
    if (q->nheld == q->capheld) {
        q->capheld = q->capheld == 0 ? 64 : q->capheld * 2;
        q->held = buf_xrealloc(q->held, q->capheld * sizeof(*q->held));
    }
    /* the broker numbers deliveries upwards, so this is an append */
    size_t i = q->nheld;
    while (i > 0 && q->held[i - 1] > dtag)
        i--;
    memmove(q->held + i + 1, q->held + i, (q->nheld - i) * sizeof(*q->held));
    q->held[i] = dtag;
    q->nheld++;
}

/* Removes `dtag`; returns 0 when it was not held (a repeat, or a stranger). */
static int held_take(offq_t *q, uint64_t dtag)
{
    size_t lo = 0, hi = q->nheld;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (q->held[mid] < dtag)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == q->nheld || q->held[lo] != dtag)
        return 0;
    memmove(q->held + lo, q->held + lo + 1, (q->nheld - lo - 1) * sizeof(*q->held));
    q->nheld--;
    return 1;
}

/* ---- channels and the connection ---- */

static void fail_pending(offq_t *q)
{
    while (q->pend_head != NULL) {
        offq_req_t *r = q->pend_head;
        q->pend_head = r->next;
        r->next = NULL;
        offq__answer(q, r, offq_err_unavailable);
    }
    q->pend_tail = NULL;
}

/* Opens channel `ch` and sets up its state; 0, or -1 with a reason (the caller drops the connection). */
static int open_channel(offq_t *q, amqp_channel_t ch, char *why, size_t whylen)
{
    amqp_channel_open(q->conn, ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(q->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL && ch == OFFQ_CH_PUBLISH) {
        amqp_confirm_select(q->conn, ch);
        r = amqp_get_rpc_reply(q->conn);
        q->next_seq = 1;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_NO_MEMORY)
            oom();
        describe(r, why, whylen);
        return -1;
    }
    if (ch == OFFQ_CH_GET) {
        /* the tags of the previous channel die with it: the broker requeued their messages */
        q->gen = (q->gen + 1) & OFFQ_GEN_MASK;
        q->nheld = 0;
    }
    return 0;
}

int offq__connect(offq_t *q, char *why, size_t whylen)
{
    amqp_connection_state_t c = amqp_new_connection();
    if (c == NULL)
        oom();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (s == NULL)
        oom();
    struct timeval tv = ms_to_tv(OFFQ_CONNECT_TIMEOUT_MS);
    int rc = amqp_socket_open_noblock(s, q->ci.host, q->ci.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(why, whylen, "connect: %s", amqp_error_string2(rc));
        goto Error;
    }
    tv = ms_to_tv(OFFQ_RPC_TIMEOUT_MS);
    amqp_set_handshake_timeout(c, &tv);
    /* an RPC that gets no answer means a broker that hangs: drop the connection */
    amqp_set_rpc_timeout(c, &tv);
    amqp_rpc_reply_t r = amqp_login(c, q->ci.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, OFFQ_HEARTBEAT_S,
                                    AMQP_SASL_METHOD_PLAIN, q->ci.user, q->ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char text[200];
        describe(r, text, sizeof(text));
        snprintf(why, whylen, "login: %s", text);
        goto Error;
    }
    q->conn = c;
    if (open_channel(q, OFFQ_CH_PUBLISH, why, whylen) != 0 || open_channel(q, OFFQ_CH_GET, why, whylen) != 0 ||
        open_channel(q, OFFQ_CH_DECLARE, why, whylen) != 0) {
        q->conn = NULL;
        goto Error;
    }
    q->last_rx_ms = now_mono_ms();
    offq__cache_clear(q); /* a new broker may not have the queues the old one had */
    return 0;
Error:
    amqp_destroy_connection(c);
    return -1;
}

void offq__lost(offq_t *q, const char *why)
{
    if (q->conn == NULL)
        return;
    log_warn("offq: connection lost", json_pack("{s:s}", "error", why));
    amqp_destroy_connection(q->conn);
    q->conn = NULL;
    atomic_store(&q->up, 0);
    atomic_store(&q->failing, 1);
    fail_pending(q);
    q->nheld = 0;
    offq__cache_clear(q);
}

void offq__close(offq_t *q)
{
    if (q->conn != NULL) {
        struct timeval tv = ms_to_tv(1000);
        amqp_set_rpc_timeout(q->conn, &tv);
        /* unacked messages go back to their queues when the connection closes */
        amqp_connection_close(q->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(q->conn);
        q->conn = NULL;
    }
    atomic_store(&q->up, 0);
    while (q->pend_head != NULL) {
        offq_req_t *r = q->pend_head;
        q->pend_head = r->next;
        free(r);
    }
    q->pend_tail = NULL;
    free(q->held);
    q->held = NULL;
    q->nheld = q->capheld = 0;
    offq__cache_clear(q);
}

/*
 * The broker closed channel `ch`: answers close-ok, drops what the channel
 * held and opens it again. Returns 0, or -1 when the connection went too.
 */
static int channel_closed(offq_t *q, amqp_channel_t ch)
{
    amqp_channel_close_ok_t ok = {0};
    int rc = amqp_send_method(q->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    if (rc != AMQP_STATUS_OK) {
        offq__lost(q, amqp_error_string2(rc));
        return -1;
    }
    if (ch == OFFQ_CH_PUBLISH)
        fail_pending(q);
    char why[200];
    if (open_channel(q, ch, why, sizeof(why)) != 0) {
        offq__lost(q, why);
        return -1;
    }
    return 0;
}

static void connection_closed(offq_t *q, const char *why)
{
    amqp_connection_close_ok_t ok = {0};
    amqp_send_method(q->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    offq__lost(q, why);
}

/*
 * Judges the reply of an RPC on `ch`. Returns 0 when normal; 1 when the
 * broker closed the channel (its reply code in `code`; the channel is open
 * again); -1 when the connection is gone (offq__lost done).
 */
static int check(offq_t *q, amqp_channel_t ch, amqp_rpc_reply_t r, int *code)
{
    char why[200];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        q->last_rx_ms = now_mono_ms();
        return 0;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            *code = ((const amqp_channel_close_t *)r.reply.decoded)->reply_code;
            return channel_closed(q, ch) == 0 ? 1 : -1;
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            describe(r, why, sizeof(why));
            connection_closed(q, why);
            return -1;
        }
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        if (r.library_error == AMQP_STATUS_NO_MEMORY)
            oom();
        break;
    default:
        break;
    }
    describe(r, why, sizeof(why));
    offq__lost(q, why);
    return -1;
}

/* ---- requests ---- */

/* Declares queue `name` unless declared lately; 0, or -1 when it cannot be used now. */
static int declare(offq_t *q, const char *name)
{
    uint64_t now = now_mono_ms();
    if (cache_has(q, name, now))
        return 0;
    amqp_table_entry_t e[3];
    int n = 0;
    if (q->ttl_s > 0) {
        e[n].key = amqp_cstring_bytes("x-expires");
        e[n].value.kind = AMQP_FIELD_KIND_I64;
        e[n].value.value.i64 = (int64_t)q->ttl_s * 1000;
        n++;
    }
    if (q->max_len > 0) {
        e[n].key = amqp_cstring_bytes("x-max-length");
        e[n].value.kind = AMQP_FIELD_KIND_I64;
        e[n].value.value.i64 = q->max_len;
        n++;
        e[n].key = amqp_cstring_bytes("x-overflow");
        e[n].value.kind = AMQP_FIELD_KIND_UTF8;
        e[n].value.value.bytes = amqp_cstring_bytes("reject-publish");
        n++;
    }
    amqp_table_t args = {n, e};
    amqp_queue_declare(q->conn, OFFQ_CH_DECLARE, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    int code = 0;
    int st = check(q, OFFQ_CH_DECLARE, amqp_get_rpc_reply(q->conn), &code);
    if (st == 1 && code == AMQP_PRECONDITION_FAILED) {
        /* it exists with other arguments (an older configuration): use it as it is */
        log_warn("offq: queue declared with other arguments; using it as it is", NULL);
        amqp_queue_declare(q->conn, OFFQ_CH_DECLARE, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
        st = check(q, OFFQ_CH_DECLARE, amqp_get_rpc_reply(q->conn), &code);
    }
    if (st != 0)
        return -1;
    cache_put(q, name, now);
    return 0;
}

static void publish(offq_t *q, offq_req_t *r)
{
    if (declare(q, r->queue) != 0) {
        offq__answer(q, r, offq_err_unavailable);
        return;
    }
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    amqp_bytes_t body = {r->len, r->body};
    /* mandatory: a queue that vanished behind the cache's back returns the message instead of dropping it */
    int rc = amqp_basic_publish(q->conn, OFFQ_CH_PUBLISH, amqp_empty_bytes, amqp_cstring_bytes(r->queue), 1, 0, &props,
                                body);
    if (rc != AMQP_STATUS_OK) {
        if (rc == AMQP_STATUS_NO_MEMORY)
            oom();
        offq__answer(q, r, offq_err_unavailable);
        offq__lost(q, amqp_error_string2(rc));
        return;
    }
    r->seq = q->next_seq++;
    r->deadline = now_mono_ms() + OFFQ_CONFIRM_TIMEOUT_MS;
    if (q->pend_tail != NULL)
        q->pend_tail->next = r;
    else
        q->pend_head = r;
    q->pend_tail = r;
}

static void fetch(offq_t *q, offq_req_t *r)
{
    const char *err = NULL;
    int code = 0;
    amqp_bytes_t name = amqp_cstring_bytes(r->queue);
    if (r->max <= 0)
        goto Done;
    /* probe on the declare channel: a 404 there costs nothing, on the get channel it would requeue every
     * message other fetches hold */
    amqp_queue_declare(q->conn, OFFQ_CH_DECLARE, name, 1, 0, 0, 0, amqp_empty_table);
    int st = check(q, OFFQ_CH_DECLARE, amqp_get_rpc_reply(q->conn), &code);
    if (st != 0) {
        /* 404: nobody ever published to this guest, or its queue expired; nothing waits */
        err = st == 1 && code == AMQP_NOT_FOUND ? NULL : offq_err_unavailable;
        goto Done;
    }
    /* its message_count is no shortcut: a release just sent on the get channel may not have reached the
     * queue yet, while the gets below come after it on the same channel */
    for (int n = 0; n < r->max; n++) {
        amqp_rpc_reply_t rep = amqp_basic_get(q->conn, OFFQ_CH_GET, name, 0);
        st = check(q, OFFQ_CH_GET, rep, &code);
        if (st != 0) {
            err = st == 1 && code == AMQP_NOT_FOUND ? NULL : offq_err_unavailable;
            goto Done;
        }
        if (rep.reply.id != AMQP_BASIC_GET_OK_METHOD)
            break; /* get-empty */
        uint64_t dtag = ((const amqp_basic_get_ok_t *)rep.reply.decoded)->delivery_tag;
        amqp_message_t msg;
        if (check(q, OFFQ_CH_GET, amqp_read_message(q->conn, OFFQ_CH_GET, &msg, 0), &code) != 0) {
            err = offq_err_unavailable;
            goto Done;
        }
        held_add(q, dtag);
        offq__post_message(q, r, (q->gen << OFFQ_TAG_BITS) | (dtag & OFFQ_TAG_MASK), msg.body.bytes, msg.body.len);
        amqp_destroy_message(&msg);
        amqp_maybe_release_buffers_on_channel(q->conn, OFFQ_CH_GET);
    }
Done:
    offq__answer(q, r, err);
}

static void settle(offq_t *q, const offq_req_t *r)
{
    if (r->tag >> OFFQ_TAG_BITS != q->gen)
        return; /* from a channel that has closed since: the broker put the message back already */
    uint64_t dtag = r->tag & OFFQ_TAG_MASK;
    if (!held_take(q, dtag))
        return; /* a second ack or release of the same tag would close the channel */
    int rc = r->kind == OFFQ_ACK ? amqp_basic_ack(q->conn, OFFQ_CH_GET, dtag, 0)
                                 : amqp_basic_reject(q->conn, OFFQ_CH_GET, dtag, 1);
    if (rc != AMQP_STATUS_OK) {
        if (rc == AMQP_STATUS_NO_MEMORY)
            oom();
        offq__lost(q, amqp_error_string2(rc));
    }
}

void offq__handle(offq_t *q, offq_req_t *r)
{
    switch (r->kind) {
    case OFFQ_PUBLISH:
        publish(q, r);
        break;
    case OFFQ_FETCH:
        fetch(q, r);
        break;
    case OFFQ_ACK:
    case OFFQ_RELEASE:
        settle(q, r);
        free(r);
        break;
    }
}

/* ---- frames outside RPCs ---- */

/* Answers the publishes up to `seq` (or just `seq`), in order. */
static void confirm(offq_t *q, uint64_t seq, int multiple, const char *err)
{
    offq_req_t **pp = &q->pend_head, *prev = NULL;
    while (*pp != NULL && (*pp)->seq <= seq) {
        offq_req_t *r = *pp;
        if (!multiple && r->seq != seq) {
            prev = r;
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (q->pend_tail == r)
            q->pend_tail = prev;
        r->next = NULL;
        offq__answer(q, r, err != NULL || r->returned ? offq_err_unavailable : NULL);
        if (!multiple)
            break;
    }
}

/* basic.return: the queue did not exist; the publish it names fails when its confirm comes. */
static void on_return(offq_t *q, const amqp_frame_t *f)
{
    const amqp_basic_return_t *ret = f->payload.method.decoded;
    char key[256];
    size_t len = ret->routing_key.len < sizeof(key) ? ret->routing_key.len : sizeof(key) - 1;
    memcpy(key, ret->routing_key.bytes, len);
    key[len] = '\0';
    amqp_message_t msg;
    int code = 0;
    if (check(q, f->channel, amqp_read_message(q->conn, f->channel, &msg, 0), &code) != 0)
        return;
    amqp_destroy_message(&msg);
    cache_drop(q, key);
    /* returns come in publish order, so the first unmarked publish to that queue is the one */
    for (offq_req_t *r = q->pend_head; r != NULL; r = r->next) {
        if (!r->returned && strcmp(r->queue, key) == 0) {
            r->returned = 1;
            break;
        }
    }
}

static void on_method(offq_t *q, const amqp_frame_t *f)
{
    char why[200];
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        if (f->channel == OFFQ_CH_PUBLISH)
            confirm(q, a->delivery_tag, a->multiple, NULL);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        /* x-overflow reject-publish on a full queue, or a broker-side failure */
        const amqp_basic_nack_t *a = f->payload.method.decoded;
        if (f->channel == OFFQ_CH_PUBLISH)
            confirm(q, a->delivery_tag, a->multiple, offq_err_unavailable);
        break;
    }
    case AMQP_BASIC_RETURN_METHOD:
        on_return(q, f);
        break;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = f->payload.method.decoded;
        log_warn("offq: channel closed by the broker",
                 json_pack("{s:i,s:i,s:s%}", "channel", f->channel, "code", c->reply_code, "reason",
                           (const char *)c->reply_text.bytes, c->reply_text.len));
        channel_closed(q, f->channel);
        break;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = f->payload.method.decoded;
        snprintf(why, sizeof(why), "connection closed by the broker: %u %.*s", c->reply_code, (int)c->reply_text.len,
                 (const char *)c->reply_text.bytes);
        connection_closed(q, why);
        break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        log_warn("offq: the broker blocked publishing (resource alarm)", NULL);
        break;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        log_info("offq: the broker unblocked publishing", NULL);
        break;
    default:
        break;
    }
}

void offq__pump(offq_t *q)
{
    while (q->conn != NULL) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(q->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            if (rc == AMQP_STATUS_NO_MEMORY)
                oom();
            offq__lost(q, amqp_error_string2(rc));
            return;
        }
        q->last_rx_ms = now_mono_ms();
        if (f.frame_type == AMQP_FRAME_METHOD)
            on_method(q, &f);
    }
    if (q->conn != NULL)
        amqp_maybe_release_buffers(q->conn);
}

uint64_t offq__expire(offq_t *q, uint64_t now, uint64_t cap)
{
    while (q->pend_head != NULL && q->pend_head->deadline <= now) {
        offq_req_t *r = q->pend_head;
        q->pend_head = r->next;
        if (q->pend_head == NULL)
            q->pend_tail = NULL;
        r->next = NULL;
        log_warn("offq: publish not confirmed in time", NULL);
        offq__answer(q, r, offq_err_unavailable);
    }
    if (q->pend_head != NULL && q->pend_head->deadline - now < cap)
        cap = q->pend_head->deadline - now;
    return cap;
}
