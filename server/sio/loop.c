/*
 * What the application runs on a worker's loop besides Socket.IO: its own
 * per-worker state, one-shot timers and outgoing TCP streams (Redis). libh2o
 * stays behind sio.h: callers see only sio_timer_t and sio_stream_t.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sio_server_on_worker(sio_server_t *srv, sio_worker_cb start, sio_worker_cb stop, void *ud)
{
    srv->worker_start = start;
    srv->worker_stop = stop;
    srv->worker_ud = ud;
}

int sio_worker_index(const sio_worker_t *w)
{
    return w->index;
}

void sio_worker_set_data(sio_worker_t *w, void *data)
{
    w->app_data = data;
}

void *sio_worker_data(const sio_worker_t *w)
{
    return w->app_data;
}

void sio_worker_post(sio_worker_t *w, void (*fn)(sio_worker_t *w, void *arg), void *arg)
{
    sio_msg_t *m = sio_msg_new(SIO_MSG_CALL);
    m->call = fn;
    m->call_arg = arg;
    sio_worker_send(w, m);
}

uint64_t sio_worker_now(const sio_worker_t *w)
{
    return h2o_now(w->loop);
}

const char sio_b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- messages to a worker (what each kind does is server.c's) ---- */

void sio_worker_send(sio_worker_t *to, sio_msg_t *msg)
{
    h2o_multithread_send_message(&to->receiver, &msg->super);
}

sio_msg_t *sio_msg_new(sio_msg_kind_t kind)
{
    sio_msg_t *m = buf_xcalloc(1, sizeof(*m));
    m->kind = kind;
    return m;
}

/* ---- timers ---- */

struct sio_timer {
    sio_worker_t *w;
    h2o_timeout_entry_t entry;
    sio_timer_cb cb;
    void *ud;
    int in_cb, freed;
};

static void timer_fired(h2o_timeout_entry_t *entry)
{
    sio_timer_t *t = H2O_STRUCT_FROM_MEMBER(sio_timer_t, entry, entry);
    t->in_cb = 1;
    t->cb(t, t->ud);
    t->in_cb = 0;
    if (t->freed)
        free(t);
}

/* h2o 2.2.5 timeouts have one duration per list; lists are made on demand
 * and kept for the worker's life, so the set of durations must stay small
 * (configuration values and backoff steps, rounded to 10 ms). */
static h2o_timeout_t *timer_list(sio_worker_t *w, uint64_t ms)
{
    ms = (ms + 9) / 10 * 10;
    int i;
    for (i = 0; i < w->ntimer_lists; i++)
        if (w->timer_lists[i].ms == ms)
            return &w->timer_lists[i].timeout;
    if (i == SIO_TIMER_LISTS) {
        /* too many distinct durations: take the nearest longer one, else the longest */
        int best = 0, longer = -1;
        for (int j = 0; j < SIO_TIMER_LISTS; j++) {
            uint64_t d = w->timer_lists[j].ms;
            if (d >= ms && (longer < 0 || d < w->timer_lists[longer].ms))
                longer = j;
            if (d > w->timer_lists[best].ms)
                best = j;
        }
        return &w->timer_lists[longer >= 0 ? longer : best].timeout;
    }
    w->timer_lists[i].ms = ms;
    h2o_timeout_init(w->loop, &w->timer_lists[i].timeout, ms);
    w->ntimer_lists++;
    return &w->timer_lists[i].timeout;
}

sio_timer_t *sio_timer_new(sio_worker_t *w, sio_timer_cb cb, void *ud)
{
    SIO_OWNER(w);
    sio_timer_t *t = buf_xcalloc(1, sizeof(*t));
    t->w = w;
    t->cb = cb;
    t->ud = ud;
    t->entry.cb = timer_fired;
    return t;
}

void sio_timer_start(sio_timer_t *t, uint64_t ms)
{
    SIO_OWNER(t->w);
    if (h2o_timeout_is_linked(&t->entry))
        h2o_timeout_unlink(&t->entry);
    h2o_timeout_link(t->w->loop, timer_list(t->w, ms), &t->entry);
}

void sio_timer_stop(sio_timer_t *t)
{
    if (h2o_timeout_is_linked(&t->entry))
        h2o_timeout_unlink(&t->entry);
}

int sio_timer_armed(const sio_timer_t *t)
{
    return h2o_timeout_is_linked((h2o_timeout_entry_t *)&t->entry);
}

void sio_timer_free(sio_timer_t *t)
{
    if (t == NULL)
        return;
    sio_timer_stop(t);
    if (t->in_cb)
        t->freed = 1;
    else
        free(t);
}

/* ---- the writes of a loop turn ---- */

/* The worker whose loop runs on this thread (set on it before it serves). */
static __thread sio_worker_t *this_worker;

bool sio_worker_is_current(const sio_worker_t *w)
{
    return w != NULL && this_worker == w;
}

static void on_flush(h2o_timeout_entry_t *entry)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, flush_entry, entry);
    while (w->flush_head != NULL) {
        sio_flush_t *f = w->flush_head;
        sio_flush_cancel(f);
        f->run(f);
    }
}

void sio_flush_bind(sio_worker_t *w)
{
    this_worker = w;
    h2o_timeout_init(w->loop, &w->flush_timeout, 0);
    w->flush_entry.cb = on_flush;
}

void sio_flush_later(sio_flush_t *f)
{
    sio_worker_t *w = this_worker;
    if (f->pprev != NULL)
        return;
    if (w == NULL) {
        f->run(f);
        return;
    }
    f->next = w->flush_head;
    f->pprev = &w->flush_head;
    if (w->flush_head != NULL)
        w->flush_head->pprev = &f->next;
    w->flush_head = f;
    if (!h2o_timeout_is_linked(&w->flush_entry))
        h2o_timeout_link(w->loop, &w->flush_timeout, &w->flush_entry);
}

void sio_flush_cancel(sio_flush_t *f)
{
    if (f->pprev == NULL)
        return;
    *f->pprev = f->next;
    if (f->next != NULL)
        f->next->pprev = f->pprev;
    f->next = NULL;
    f->pprev = NULL;
}

/* ---- streams ---- */

struct sio_stream {
    sio_flush_t flush; /* first: the flush finds the stream from it */
    sio_worker_t *w;
    h2o_socket_t *sock;
    sio_stream_callbacks_t cbs;
    void *ud;
    buf_t out;      /* waiting to be written */
    buf_t inflight; /* handed to h2o_socket_write, which needs it until its callback */
    sio_timer_t *fail_timer;
    int connected, writing, in_cb, closed;
};

static void stream_flush(sio_stream_t *st);

static void stream_flush_deferred(sio_flush_t *f)
{
    stream_flush((sio_stream_t *)f);
}

static void stream_dispose(sio_stream_t *st)
{
    sio_flush_cancel(&st->flush);
    if (st->sock != NULL) {
        st->sock->data = NULL;
        h2o_socket_close(st->sock);
        st->sock = NULL;
    }
    sio_timer_free(st->fail_timer);
    buf_free(&st->out);
    buf_free(&st->inflight);
    free(st);
}

/*
 * Ends a callback into the owner (which did in_cb++ before it): a stream the
 * owner closed meanwhile is freed now. Returns 1 when it was closed.
 */
static int callback_done(sio_stream_t *st)
{
    st->in_cb--;
    if (!st->closed)
        return 0;
    if (st->in_cb == 0)
        stream_dispose(st);
    return 1;
}

/* The connection failed or ended: tell the owner once, then free. */
static void stream_fail(sio_stream_t *st, const char *err)
{
    if (st->closed)
        return;
    st->closed = 1;
    st->in_cb++;
    st->cbs.on_close(st, err, st->ud);
    callback_done(st);
}

static void on_stream_read(h2o_socket_t *sock, const char *err)
{
    sio_stream_t *st = sock->data;
    if (st == NULL)
        return;
    if (err != NULL) {
        stream_fail(st, err);
        return;
    }
    if (sock->input->size == 0)
        return;
    st->in_cb++;
    st->cbs.on_read(st, sock->input->bytes, sock->input->size, st->ud);
    if (callback_done(st))
        return;
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static void on_stream_written(h2o_socket_t *sock, const char *err)
{
    sio_stream_t *st = sock->data;
    if (st == NULL)
        return;
    st->writing = 0;
    buf_reset(&st->inflight);
    if (err != NULL) {
        stream_fail(st, err);
        return;
    }
    stream_flush(st);
}

static void stream_flush(sio_stream_t *st)
{
    if (!st->connected || st->writing || st->closed || st->out.len == 0)
        return;
    /* swap: what waited becomes what is in flight */
    buf_t tmp = st->inflight;
    st->inflight = st->out;
    st->out = tmp;
    st->writing = 1;
    h2o_iovec_t v = h2o_iovec_init(st->inflight.base, st->inflight.len);
    h2o_socket_write(st->sock, &v, 1, on_stream_written);
}

static void on_connect_failed(sio_timer_t *t, void *ud)
{
    stream_fail(ud, "connection failed");
}

static void on_stream_connect(h2o_socket_t *sock, const char *err)
{
    sio_stream_t *st = sock->data;
    if (st == NULL)
        return;
    if (err != NULL) {
        stream_fail(st, err);
        return;
    }
    st->connected = 1;
    st->in_cb++;
    st->cbs.on_connect(st, NULL, st->ud);
    if (callback_done(st))
        return;
    h2o_socket_read_start(sock, on_stream_read);
    stream_flush(st);
}

sio_stream_t *sio_stream_connect(sio_worker_t *w, const struct sockaddr *addr, unsigned addrlen,
                                 const sio_stream_callbacks_t *cbs, void *ud)
{
    SIO_OWNER(w);
    sio_stream_t *st = buf_xcalloc(1, sizeof(*st));
    st->flush.run = stream_flush_deferred;
    st->w = w;
    st->cbs = *cbs;
    st->ud = ud;
    st->sock = h2o_socket_connect(w->loop, (struct sockaddr *)addr, (socklen_t)addrlen, on_stream_connect);
    if (st->sock == NULL) {
        /* report the failure from the loop, never from inside the caller */
        st->fail_timer = sio_timer_new(w, on_connect_failed, st);
        sio_timer_start(st->fail_timer, 0);
        return st;
    }
    st->sock->data = st;
    return st;
}

void sio_stream_write(sio_stream_t *st, const void *data, size_t len)
{
    SIO_OWNER(st->w);
    if (st->closed)
        return;
    buf_append(&st->out, data, len);
    sio_flush_later(&st->flush);
}

void sio_stream_close(sio_stream_t *st)
{
    SIO_OWNER(st->w);
    if (st->closed)
        return;
    st->closed = 1;
    if (st->in_cb == 0)
        stream_dispose(st);
}
