/*
 * offq's answers, posted from its thread back to the worker that asked (by
 * the thread's loop, offq.c, and by the AMQP side, broker.c), and the clock
 * they share. Calls nothing of offq's own: both sides stand on it.
 */
#include "../check/check.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../buf/buf.h"

const char offq_err_unavailable[] = "unavailable";

void offq__life_release(offq_life_t *life)
{
    int before = atomic_fetch_sub(&life->refs, 1);
    CHECK(before > 0);
    if (before == 1)
        free(life);
}

/* ---- answers, run on the caller's worker ---- */

static void run_answer(sio_worker_t *w, void *arg)
{
    offq_req_t *r = arg;
    if (!atomic_load(&r->life->dead)) {
        if (r->kind == OFFQ_PUBLISH)
            r->done_cb(w, r->err, r->ud);
        else
            r->msg_cb(w, 0, NULL, 0, r->err, r->ud);
    }
    offq__life_release(r->life);
    free(r);
}

void offq__answer(offq_t *q, offq_req_t *r, const char *err)
{
    r->err = err;
    r->life = q->life;
    atomic_fetch_add(&q->life->refs, 1);
    sio_worker_post(r->w, run_answer, r);
}

typedef struct offq_msg {
    offq_msg_cb cb;
    void *ud;
    offq_life_t *life;
    uint64_t tag;
    size_t len;
    char body[];
} offq_msg_t;

static void run_message(sio_worker_t *w, void *arg)
{
    offq_msg_t *m = arg;
    if (!atomic_load(&m->life->dead))
        m->cb(w, m->tag, m->body, m->len, NULL, m->ud);
    offq__life_release(m->life);
    free(m);
}

void offq__post_message(offq_t *q, const offq_req_t *fetch, uint64_t tag, const void *body, size_t len)
{
    offq_msg_t *m = buf_xmalloc(sizeof(*m) + len + 1);
    m->cb = fetch->msg_cb;
    m->ud = fetch->ud;
    m->life = q->life;
    atomic_fetch_add(&q->life->refs, 1);
    m->tag = tag;
    m->len = len;
    if (len > 0)
        memcpy(m->body, body, len);
    m->body[len] = '\0';
    sio_worker_post(fetch->w, run_message, m);
}
