/*
 * The history's write-ahead log, read side. chat.lua appends every delivered
 * message to the stream {nc}:hwal in the same atomic step as its receipt, so
 * a message acked "delivered" is in Redis before anyone hears of it. Worker 0
 * of every node reads the stream through the consumer group "hist" (each
 * entry goes to one node), queues each row in its history writer, acks the
 * entry once the writer says the row is stored, and trims the stream below
 * what the group still waits for. Entries that
 * a node read and never acked (it died, or froze) are claimed by another
 * node after WAL_CLAIM_IDLE_MS. Rows are keyed by (session, seq) in the
 * store, so a row written twice (claimed from a node that had stored it but
 * not yet acked) is one row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "../history/history.h"
#include "../keys/keys.h"
#include "../log/log.h"
#include "internal.h"

#define WAL_GROUP "hist"
#define WAL_COUNT 256  /* entries per read */
#define WAL_POLL_MS 20 /* between reads while the stream is quiet */
#define WAL_CLAIM_EVERY_MS 1000
#define WAL_CLAIM_IDLE_MS 5000 /* a live node stores a row within a commit interval (200 ms) */
#define WAL_ID_MAX 48
/* Rows handed to the history writer and not stored yet. While the store is
 * down they would pile up in this node's memory; past this, reading stops
 * and the entries wait in the stream, where they are safe anyway. */
#define WAL_MAX_HELD 65536

/* An entry read and queued in the history, waiting for its row to be stored. */
typedef struct wal_held {
    char id[WAL_ID_MAX];
    uint64_t ticket; /* hist_put_message_ticket's; 0: nothing to wait for */
} wal_held_t;

typedef struct hub_wal {
    hub_worker_t *hw;
    keys_name_t key;
    sio_timer_t *tick;
    int busy;        /* a command of ours is in flight */
    int stopped;     /* the worker stopped while busy: the answer frees this */
    int group_ready; /* XGROUP CREATE answered */
    int own_done;    /* our own pending entries (left by a previous run) were read again */
    char own_cursor[WAL_ID_MAX];
    uint64_t last_claim_ms;
    char consumer[96];
    wal_held_t *held; /* in ticket order */
    size_t nheld, cap;
} hub_wal_t;

static void wal_schedule(hub_wal_t *wal, uint64_t ms)
{
    sio_timer_start(wal->tick, ms);
}

/* The answer to our command came: 1 when the reader is gone (it is freed here). */
static int answered(hub_wal_t *wal)
{
    wal->busy = 0;
    if (!wal->stopped)
        return 0;
    free(wal->held);
    free(wal);
    return 1;
}

static const char *field(redisReply *kv, const char *name)
{
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && strcmp(kv->element[i]->str, name) == 0 &&
            kv->element[i + 1]->type == REDIS_REPLY_STRING)
            return kv->element[i + 1]->str;
    return NULL;
}

static int is_held(const hub_wal_t *wal, const char *id)
{
    for (size_t i = 0; i < wal->nheld; i++)
        if (strcmp(wal->held[i].id, id) == 0)
            return 1;
    return 0;
}

/*
 * Queues the rows of `entries` ([[id, [field, value, ...]], ...]); returns how
 * many there were. Only claimed entries can be ours already (`claimed`): the
 * scan of what is held is left off the common path, where it would cost
 * entries x held comparisons on the loop.
 */
static size_t take_entries(hub_wal_t *wal, redisReply *entries, char *last_id, int claimed)
{
    hist_t *hist = wal->hw->hub->history;
    size_t n = 0;
    for (size_t i = 0; entries != NULL && entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
        redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[0]->len >= WAL_ID_MAX)
            continue;
        n++;
        const char *id = e->element[0]->str;
        if (last_id != NULL)
            buf_copy_str(last_id, WAL_ID_MAX, id);
        if (claimed && is_held(wal, id))
            continue; /* claimed back while our own writer still has it */
        redisReply *kv = e->element[1];
        const char *m = kv->type == REDIS_REPLY_ARRAY ? field(kv, CHAT_WAL_FIELD) : NULL;
        chat_wal_entry_t row;
        int ok = m != NULL && chat_wal_parse(m, &row) == 0;
        if (!ok && m != NULL)
            log_warn("history log: an entry that is not a message, acked and dropped", json_pack("{s:s}", "entry", id));
        if (wal->nheld == wal->cap) {
            wal->cap = wal->cap ? wal->cap * 2 : 256;
            wal->held = buf_xrealloc(wal->held, wal->cap * sizeof(*wal->held));
        }
        wal_held_t *hd = &wal->held[wal->nheld++];
        buf_copy_str(hd->id, sizeof(hd->id), id);
        hd->ticket = 0; /* a deleted entry (nil fields) or no history: acked at once */
        if (hist != NULL && ok)
            hd->ticket = hist_put_message_ticket(hist, row.sid, row.seq, row.id, row.from, row.text, row.ts, row.dts);
    }
    return n;
}

/* Stream ids are "ms-seq"; claimed entries may sit in `held` out of order. */
static int id_less(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    return am < bm || (am == bm && as < bs);
}

static const char *newest_id(const wal_held_t *held, size_t n)
{
    const char *best = held[0].id;
    for (size_t i = 1; i < n; i++)
        if (id_less(best, held[i].id))
            best = held[i].id;
    return best;
}

static void on_acked(redisReply *reply, const char *err, void *ud)
{
    (void)reply;
    (void)ud;
    if (err != NULL)
        log_warn("history log: ack failed, the entries will be claimed again", json_pack("{s:s}", "error", err));
}

/* What the trim after one ack needs: the client, and the newest id acked. */
typedef struct wal_trim {
    redis_client_t *c;
    keys_name_t key;
    char floor[WAL_ID_MAX];
} wal_trim_t;

/*
 * [count, smallest pending id, largest, consumers]. Every entry below the
 * smallest pending id was delivered to the group and acked (entries the group
 * has not delivered yet all lie above its pending ones), so the stream can
 * lose them; with nothing pending, everything up to what we just acked can
 * go. One XTRIM per batch costs far less on Redis than an XDEL per entry, and
 * frees whole stream nodes instead of marking entries deleted.
 */
static void on_pending(redisReply *reply, const char *err, void *ud)
{
    wal_trim_t *t = ud;
    const char *minid = NULL;
    if (err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER) {
        redisReply *low = reply->element[1];
        if (reply->element[0]->integer == 0)
            minid = t->floor;
        else if (low->type == REDIS_REPLY_STRING && low->len < WAL_ID_MAX)
            minid = low->str;
    }
    if (minid != NULL)
        redis_command(t->c, on_acked, NULL, "XTRIM", t->key.s, "MINID", "~", minid, (const char *)NULL);
    free(t);
}

/* Acks the entries whose rows are stored, then trims the stream below what
 * the group still waits for; they leave `held`. */
static void ack_stored(hub_wal_t *wal)
{
    hist_t *hist = wal->hw->hub->history;
    uint64_t stored = hist != NULL ? hist_stored_count(hist) : UINT64_MAX;
    size_t n = 0;
    while (n < wal->nheld && n < WAL_COUNT && wal->held[n].ticket <= stored)
        n++;
    if (n == 0 || !redis_client_up(wal->hw->cmd))
        return;
    const char *argv[3 + WAL_COUNT];
    argv[0] = "XACK", argv[1] = wal->key.s, argv[2] = WAL_GROUP;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = wal->held[i].id;
    if (redis_command_argv(wal->hw->cmd, (int)(3 + n), argv, NULL, on_acked, NULL) != 0)
        return;
    wal_trim_t *t = buf_xcalloc(1, sizeof(*t));
    t->c = wal->hw->cmd;
    t->key = wal->key;
    buf_copy_str(t->floor, sizeof(t->floor), newest_id(wal->held, n));
    if (redis_command(t->c, on_pending, t, "XPENDING", wal->key.s, WAL_GROUP, (const char *)NULL) != 0)
        free(t);
    metrics_add(wal->hw->hub->m.wal_stored, (int64_t)n);
    memmove(wal->held, wal->held + n, (wal->nheld - n) * sizeof(*wal->held));
    wal->nheld -= n;
}

static void on_read(redisReply *reply, const char *err, void *ud)
{
    hub_wal_t *wal = ud;
    if (answered(wal))
        return;
    size_t n = 0;
    if (err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        /* [[key, entries]] */
        redisReply *stream = reply->element[0];
        if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2)
            n = take_entries(wal, stream->element[1], wal->own_done ? NULL : wal->own_cursor, 0);
    }
    if (err == NULL && !wal->own_done && n == 0)
        wal->own_done = 1; /* nothing of ours is left from before: read new entries from now on */
    wal_schedule(wal, err == NULL && n == WAL_COUNT ? 0 : WAL_POLL_MS);
}

static void on_claimed(redisReply *reply, const char *err, void *ud)
{
    hub_wal_t *wal = ud;
    if (answered(wal))
        return;
    /* [next cursor, entries, deleted ids] */
    if (err == NULL && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2) {
        size_t before = wal->nheld;
        take_entries(wal, reply->element[1], NULL, 1);
        if (wal->nheld > before) {
            metrics_add(wal->hw->hub->m.wal_claimed, (int64_t)(wal->nheld - before));
            log_info("history log: entries taken over from a node that did not store them",
                     json_pack("{s:i}", "count", (int)(wal->nheld - before)));
        }
    }
    wal_schedule(wal, 0);
}

static void on_group(redisReply *reply, const char *err, void *ud)
{
    hub_wal_t *wal = ud;
    if (answered(wal))
        return;
    /* BUSYGROUP: another node made it first */
    if (err == NULL || strstr(err, "BUSYGROUP") != NULL)
        wal->group_ready = 1;
    wal_schedule(wal, wal->group_ready ? 0 : 500);
}

static void on_tick(sio_timer_t *t, void *ud)
{
    hub_wal_t *wal = ud;
    redis_client_t *c = wal->hw->cmd;
    ack_stored(wal);
    if (wal->busy || !redis_client_up(c) || wal->nheld >= WAL_MAX_HELD) {
        wal_schedule(wal, 100);
        return;
    }
    int rc;
    char count[16];
    snprintf(count, sizeof(count), "%d", WAL_COUNT);
    uint64_t now = sio_worker_now(wal->hw->w);
    if (!wal->group_ready) {
        rc = redis_command(c, on_group, wal, "XGROUP", "CREATE", wal->key.s, WAL_GROUP, "0", "MKSTREAM",
                           (const char *)NULL);
    } else if (wal->own_done && now - wal->last_claim_ms >= WAL_CLAIM_EVERY_MS) {
        wal->last_claim_ms = now;
        char idle[16];
        snprintf(idle, sizeof(idle), "%d", WAL_CLAIM_IDLE_MS);
        rc = redis_command(c, on_claimed, wal, "XAUTOCLAIM", wal->key.s, WAL_GROUP, wal->consumer, idle, "0-0", "COUNT",
                           count, (const char *)NULL);
    } else {
        rc = redis_command(c, on_read, wal, "XREADGROUP", "GROUP", WAL_GROUP, wal->consumer, "COUNT", count, "STREAMS",
                           wal->key.s, wal->own_done ? ">" : wal->own_cursor, (const char *)NULL);
    }
    if (rc == 0)
        wal->busy = 1;
    else
        wal_schedule(wal, 100);
}

void hub_wal_start(hub_worker_t *hw)
{
    hub_wal_t *wal = buf_xcalloc(1, sizeof(*wal));
    wal->hw = hw;
    wal->key = keys_name(KEYS_WAL, NULL);
    buf_copy_str(wal->consumer, sizeof(wal->consumer), hw->hub->cfg->node_id);
    buf_copy_str(wal->own_cursor, sizeof(wal->own_cursor), "0");
    wal->tick = sio_timer_new(hw->w, on_tick, wal);
    hw->wal = wal;
    wal_schedule(wal, 0);
}

/*
 * Called before the worker's Redis client goes: what is held and not acked
 * stays pending in the group, for this node's next run or another node.
 */
void hub_wal_stop(hub_worker_t *hw)
{
    hub_wal_t *wal = hw->wal;
    if (wal == NULL)
        return;
    ack_stored(wal);
    sio_timer_free(wal->tick);
    wal->tick = NULL;
    hw->wal = NULL;
    if (wal->busy) { /* the client, freed next, answers it with an error */
        wal->stopped = 1;
        return;
    }
    free(wal->held);
    free(wal);
}
