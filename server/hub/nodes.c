/*
 * Liveness: when a node dies, the peers of its guests hear that they went.
 * A guest's location only expires (30 s) when its worker dies, and nobody is
 * told. So every worker beats in Redis (matcher.lua's "reap", every
 * BEAT_MS), and keeps the set of the guests it holds; the beat of any worker
 * also takes the guests of workers that have not beaten for DEAD_MS and
 * cancels each one with its own connection id, exactly as that connection
 * closing would have: it stops waiting, its location goes, and its peer gets
 * peer-status online:false. A guest that already reconnected elsewhere has
 * another connection id and is left alone.
 *
 * A worker that was only frozen past DEAD_MS finds itself unknown at its
 * next beat: it registers its guests again and their peers hear they are
 * back. Beats go on a Redis connection of their own: on the worker's command
 * connection a beat would wait behind everything the worker has pipelined,
 * and a busy worker (100,000 guests connecting) would look dead.
 */
#include <stdlib.h>
#include <string.h>

#include "../chat/chat.h"
#include "internal.h"

#define BEAT_MS 2000
#define DEAD_MS 15000 /* well past any stall a live worker has (the frozen-node test stops one for 5 s) */
#define REAP_MAX 500  /* guests per beat; more are taken at once by the next one */

typedef struct reaped {
    hub_worker_t *hw;
    char gid[GUEST_ID_LEN + 1];
} reaped_t;

static void on_reaped(const match_result_t *r, void *ud)
{
    reaped_t *g = ud;
    /* "other_connection": it came back elsewhere since the beat took it */
    if (r->err == NULL && strcmp(r->status, "ok") == 0 && !g->hw->stopping) {
        chat_presence(g->hw->cmd, g->gid, 0, NULL, NULL);
        metrics_inc(g->hw->hub->m.guests_reaped);
    }
    free(g);
}

static void reap(hub_worker_t *hw, const redisReply *r)
{
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
        const redisReply *gid = r->element[i], *conn = r->element[i + 1];
        if (gid->type != REDIS_REPLY_STRING || conn->type != REDIS_REPLY_STRING || gid->len > GUEST_ID_LEN)
            continue;
        reaped_t *g = buf_xcalloc(1, sizeof(*g));
        g->hw = hw;
        memcpy(g->gid, gid->str, gid->len);
        if (match_cancel(hw->cmd, &hw->hub->match, g->gid, conn->str, 1, on_reaped, g) != 0)
            free(g);
    }
}

/* This worker was not known (it starts, or it was frozen and taken for dead): its guests are announced again. */
static void announce_again(hub_worker_t *hw)
{
    for (size_t b = 0; b < HUB_REGISTRY_BUCKETS; b++)
        for (hub_conn_t *c = hw->registry[b]; c != NULL; c = c->hnext) {
            c->reannounce = 1;
            hub_guest_rehello(c);
        }
}

static void on_beat(redisReply *reply, const char *err, void *ud)
{
    hub_worker_t *hw = ud;
    hw->beating = 0;
    if (hw->stopping || err != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "new") == 0 && hw->beaten)
        announce_again(hw);
    hw->beaten = 1;
    reap(hw, reply);
    /* a full answer: more are waiting, take them now rather than in BEAT_MS */
    if (reply->elements >= 1 + 2 * REAP_MAX)
        sio_timer_start(hw->beat, 0);
}

static void on_tick(sio_timer_t *t, void *ud)
{
    hub_worker_t *hw = ud;
    sio_timer_start(t, BEAT_MS);
    if (hw->beating || !redis_client_up(hw->beat_cmd))
        return;
    if (match_reap(hw->beat_cmd, hw->channel, DEAD_MS, REAP_MAX, on_beat, hw) == 0)
        hw->beating = 1;
}

/* The beat connection is (back) up: beat now, so that a worker is known from its first guest on. */
static void on_beat_state(int up, void *ud)
{
    hub_worker_t *hw = ud;
    if (up && hw->beat != NULL)
        sio_timer_start(hw->beat, 0);
}

void hub_nodes_start(hub_worker_t *hw)
{
    hw->beat = sio_timer_new(hw->w, on_tick, hw);
    hw->beat_cmd = redis_client_new(hw->w, &hw->hub->redis, hw->hub->scripts, on_beat_state, NULL, hw);
    sio_timer_start(hw->beat, 0);
}

void hub_nodes_stop(hub_worker_t *hw)
{
    sio_timer_free(hw->beat);
    hw->beat = NULL;
    redis_client_free(hw->beat_cmd); /* a beat in flight is answered with an error, and ignored */
    hw->beat_cmd = NULL;
}
